"""A serving host picks up policy files added or changed in its home, checked first.

The folder is polled (names, sizes, modification times) from the host's upkeep thread. On a
change the whole set is loaded with `load_policy`, which refuses any set with an error finding;
only a set that loads replaces the active policy, swapped whole in the `PolicySource`, so a
decision sees one revision. A bad file never replaces the good revision: the host keeps deciding
with the last set that loaded and logs why the new one was refused, once per change.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from host.gate.gate import PolicySource
from policies.loader import PolicyLoadError, load_policy

log = logging.getLogger("stockade.policy")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint:
    """What changes when a policy file is added, removed, replaced or edited."""
    out: list[tuple[str, int, int]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    for ent in entries:
        if not ent.name.endswith(".toml"):
            continue
        try:
            st = ent.stat()
        except OSError:
            continue
        out.append((ent.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


@dataclass
class ReloadResult:
    changed: bool  # the folder differs from the last one looked at
    revision: str  # the active revision after this poll
    refused: str | None = None  # why a changed folder did not replace the active policy


class PolicyWatch:
    def __init__(self, source: PolicySource, folder: Path) -> None:
        self.source = source
        self.folder = folder
        self._seen = fingerprint(folder)

    def poll(self) -> ReloadResult:
        now = fingerprint(self.folder)
        active = self.source.current()
        if now == self._seen:
            return ReloadResult(False, active.revision)
        self._seen = now
        try:
            policy = load_policy(self.folder)
        except PolicyLoadError as exc:
            log.error("policy change in %s refused, still deciding with revision %s: %s",
                      self.folder, active.revision, exc)
            return ReloadResult(True, active.revision, str(exc))
        except (OSError, ValueError) as exc:
            log.error("policy folder %s unreadable, still deciding with revision %s: %s",
                      self.folder, active.revision, exc)
            return ReloadResult(True, active.revision, str(exc))
        if policy.revision != active.revision:
            self.source.policy = policy
            log.warning("policy reloaded from %s: revision %s (was %s)", self.folder,
                        policy.revision, active.revision)
        return ReloadResult(True, policy.revision)
