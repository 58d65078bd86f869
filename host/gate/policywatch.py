"""A serving host picks up policy files added or changed in its home, checked first.

The folder is polled (names, sizes, modification times) from the host's upkeep thread. A change
is used once the folder has held still for a whole poll: an editor or `cp` writes a file in place,
in pieces, and a first piece cut before a forbid is a valid, wider policy of its own (a writer
that pauses longer than a poll can still be caught: `stockade policy add` writes by rename). Then
the whole set is loaded with `load_policy`, which refuses any set with an error or a
security-warning finding; only a set that loads replaces the active policy, swapped whole in the
`PolicySource`, so a decision sees one revision. A bad file never replaces the good revision:
the host keeps deciding with the last set that loaded and logs why the new one was refused,
once per change.

Rule 14: each outcome is a record in the audit chain (`record(kind, detail)`, given by the host):
`policy_load` is written before the new revision decides anything, and a revision whose record
cannot be written is not used; `policy_refused` says what a refused change was and why.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from host.gate.gate import PolicySource
from host.inert import visible
from host.ledger.records import AuditError
from policies.findings import FAILING
from policies.loader import PolicyLoadError, is_toml_name, load_policy

log = logging.getLogger("stockade.policy")

Fingerprint = tuple[tuple[str, int, int, int, int], ...]
# Writes one audit record (`kind`, `detail`); raises AuditError when it cannot.
Recorder = Callable[[str, str], object]


class Syncer(Protocol):
    def adopt(self) -> object: ...
# Characters of a refusal kept in its audit record. Guards: record size on a folder of bad files
# (the findings' first lines say why; `stockade policy check` lists them all).
MAX_REFUSAL_DETAIL = 600


def fingerprint(folder: Path) -> Fingerprint:
    """What changes when a policy file is added, removed, replaced or edited: its name, size,
    modification time, inode and the inode's change time. The last is what no writer can set
    back (`cp -p`, `rsync -t` and `touch -r` set the mtime, and an edit may keep the size: a
    narrowing `apps = ["crm"]` -> `["bot"]` went unnoticed, the host deciding with the old
    policy while `policy reload` named the new one)."""
    out: list[tuple[str, int, int, int, int]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    for ent in entries:
        if not is_toml_name(ent.name):
            continue
        try:
            st = ent.stat()
        except OSError:
            continue
        out.append((ent.name, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return tuple(sorted(out))


@dataclass
class ReloadResult:
    changed: bool  # the folder differs from the last one looked at
    revision: str  # the active revision after this poll
    refused: str | None = None  # why a changed folder did not replace the active policy
    settling: bool = False  # changed since the last poll: looked at again at the next one


class PolicyWatch:
    def __init__(self, source: PolicySource, folder: Path, record: Recorder,
                 sync: Syncer | None = None,
                 exclusive: Callable[[], AbstractContextManager[object]] | None = None,
                 ) -> None:
        """`exclusive`: held while a new revision is recorded and made active (the ledger's
        commit lock, `ReadBatch.exclusive`), so no admission commits between the two: the gate
        checks in each admission's transaction that its policy is still the active one, and
        one committed after the `policy_load` record was decided on that revision."""
        self.source = source
        self._exclusive = exclusive or contextlib.nullcontext
        self.folder = folder
        self._record = record
        # Brings the folder up to date first (a shared store's published bundle:
        # `host.apps.published`); whatever it writes is then checked and loaded as below.
        self._sync = sync
        self._seen = fingerprint(folder)
        # The changed folder as the last poll saw it: loaded only when this poll sees it again.
        self._settling: Fingerprint | None = None

    def _refused(self, active: str, why: str) -> ReloadResult:
        # `why` quotes the folder's file names and the findings' author text: inert on the
        # operator's terminal (DESIGN rule 12; `serve` logs there); the record keeps it exact.
        log.error("policy change in %s refused, still deciding with revision %s: %s",
                  self.folder, active, visible(why, limit=MAX_REFUSAL_DETAIL))
        try:
            self._record("policy_refused", f"still deciding with revision {active}: "
                         f"{why}"[:MAX_REFUSAL_DETAIL])
        except (AuditError, OSError, ValueError) as exc:  # the refusal stands either way
            log.error("policy refusal could not be audited: %s", exc)
        return ReloadResult(True, active, why)

    def poll(self) -> ReloadResult:
        if self._sync is not None:
            try:
                self._sync.adopt()
            except Exception:  # the store unreachable: keep the folder, try at the next poll
                log.exception("could not look for a published policy")
        now = fingerprint(self.folder)
        active = self.source.current()
        if now == self._seen:
            self._settling = None
            return ReloadResult(False, active.revision)
        if now != self._settling:
            # Guards: a file caught half-written deciding (see the module's docstring).
            self._settling = now
            return ReloadResult(True, active.revision, settling=True)
        seen, self._seen = self._seen, now
        try:
            policy = load_policy(self.folder)
        except PolicyLoadError as exc:
            # The codes first: the record is capped, and they say at a glance what to fix.
            codes = sorted({f.code for f in exc.findings if f.severity in FAILING})
            return self._refused(active.revision, f"{', '.join(codes)}: {exc}")
        except (OSError, ValueError) as exc:
            return self._refused(active.revision, f"policy folder unreadable: {exc}")
        if fingerprint(self.folder) != now:
            # A writer started while the set was read: what was read may be its first piece.
            self._seen, self._settling = seen, None
            return ReloadResult(True, active.revision, settling=True)
        if policy.revision != active.revision:
            with self._exclusive():
                try:
                    self._record("policy_load", f"revision {policy.revision} from "
                                 f"{self.folder} (was {active.revision})")
                except (AuditError, OSError, ValueError) as exc:
                    # Audit before act: an unrecorded revision never decides. The next poll
                    # tries again (the folder counts as unseen), not only its next change.
                    self._seen = seen
                    log.error("policy revision %s not used: its audit record could not be "
                              "written (%s)", policy.revision, exc)
                    return ReloadResult(True, active.revision, f"not audited: {exc}")
                self.source.policy = policy
            log.warning("policy reloaded from %s: revision %s (was %s)", self.folder,
                        policy.revision, active.revision)
        return ReloadResult(True, policy.revision)
