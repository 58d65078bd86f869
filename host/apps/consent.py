"""Operator consent: which permissions were granted, bound to exactly what was shown.

A consent record binds the install id, app id, version, package hash, manifest hash, the granted
permissions, the policy revision in force, the time and its number among the install's consents,
as canonical JSON signed by the host keyring (`host/keys/keyring.py`). `verify_install` re-checks
it whenever a record is loaded for use; an edit made outside the CLI (raw SQL on host.db:
widening `grants`, swapping the manifest or the package hash, pointing the install back at an
older consent: `host/apps/consentseq.py` says how that is told) fails the check and disables
the app.

On a store several hosts share, a consent may be signed (on another host) by a key this host
has not adopted yet: the rotation is published into the store and each host's upkeep adopts it
every few seconds, while an install watcher looks at a new consent within a fraction of one.
So a consent by a key this host does not know is first met by adopting the published keys
(`host.keys.shared`), and one still unknown after that is *not yet verifiable*: the app does not
run here until it is, and nothing is disabled. Calling it tampering would write `enabled = 0`
into the shared store and stop a genuinely consented app on every host. On a home's own store
every signing key is in the home, so an unknown key is no better than a forged signature.

Granting is explicit: interactively a person confirms on a TTY; otherwise `--grant PERM` must name
every permission granted. There is no blanket "yes" flag, and a grant the manifest did not ask
for is an error (it would be a typo at best).
"""
from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from host.apps.consentseq import latest_and_switch, payload_seq, remember
from host.apps.installs import ConsentRow, InstallRecord, InstallStore
from host.apps.manifest import Manifest, canonical_json
from host.keys.keyring import Keyring, valid_kid
from host.keys.shared import adopt_keys

CONSENT_FORMAT = "stockade-consent-v1"


class ConsentRequired(Exception):
    """No TTY and no --grant: the operator must confirm explicitly (CLI exit 3)."""

    def __init__(self, asked: Iterable[str]) -> None:
        self.asked = sorted(asked)
        flags = " ".join(f"--grant {p}" for p in self.asked)
        super().__init__(
            "confirmation required: not on a terminal, and no --grant given; pass "
            f"{flags or '(nothing to grant)'} naming every permission you grant "
            "(a subset is allowed; the app gets PermissionDenied for the rest)")


class ConsentError(Exception):
    """A --grant names something the package does not ask for (CLI exit 2)."""


class ConsentDeclined(Exception):
    """The operator answered no (CLI exit 1)."""


def is_interactive() -> bool:
    """True when a person can answer prompts (stdin and stderr are terminals)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def resolve_grants(
    asked: frozenset[str],
    grant_flags: Iterable[str],
    *,
    interactive: bool,
    confirm: Callable[[str, bool], bool],
    ask_about: frozenset[str] | None = None,
    already: frozenset[str] = frozenset(),
) -> frozenset[str]:
    """Decide the granted set.

    `ask_about` are the permissions needing a decision now (all asked at install; the newly asked
    ones at an update); `already` are kept grants that need no new decision. With flags, exactly
    the flags are granted (plus `already`); without, a person is asked; with neither, raise
    ConsentRequired. `confirm(question, default)` is typer.confirm in the CLI.
    """
    ask = asked if ask_about is None else ask_about
    flags = set(grant_flags)
    unknown = sorted(flags - asked)
    if unknown:
        raise ConsentError(
            f"--grant {', '.join(unknown)}: the package does not ask for "
            f"{'this' if len(unknown) == 1 else 'these'}; it asks for: "
            f"{', '.join(sorted(asked)) or 'nothing'}")
    not_new = sorted(flags - ask - already)
    if not_new:
        raise ConsentError(f"--grant {', '.join(not_new)}: not part of this decision; "
                           f"decide on: {', '.join(sorted(ask))}")
    if flags:
        return frozenset(flags | (already & asked))
    if not ask:
        return already & asked
    if not interactive:
        raise ConsentRequired(ask)
    if confirm(f"Grant all {len(ask)} permission(s) listed above?", False):
        return frozenset(ask | (already & asked))
    chosen = {p for p in sorted(ask) if confirm(f"Grant {p}?", False)}
    if not confirm(f"Proceed granting {', '.join(sorted(chosen)) or 'nothing new'}?", False):
        raise ConsentDeclined("not installed: you declined")
    return frozenset(chosen | (already & asked))


def _payload(*, consent_id: str, install_id: str, app_id: str, version: str,
             package_hash: str, manifest_hash: str, grants: frozenset[str],
             policy_revision: str | None, granted_at: float, kind: str, seq: int,
             rest_as: str | None = None, enabled: bool | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {} if rest_as is None else {"rest_as": rest_as}
    if enabled is not None:
        extra["enabled"] = enabled
    return {**extra,
        "format": CONSENT_FORMAT, "consent_id": consent_id, "install_id": install_id, "seq": seq,
        "app_id": app_id, "version": version, "package_hash": package_hash,
        "manifest_hash": manifest_hash, "grants": sorted(grants),
        "policy_revision": policy_revision, "granted_at": granted_at, "kind": kind,
    }


def make_consent(
    keyring: Keyring, *, install_id: str, app_id: str, version: str, package_hash: str,
    manifest_hash: str, grants: frozenset[str], policy_revision: str | None, now: float,
    seq: int, kind: str = "install", rest_as: str | None = None, enabled: bool | None = None,
) -> ConsentRow:
    """Build and sign a consent record (kind: install, update, regrant). `seq`: its number
    among the install's consents (`host.apps.consentseq.next_seq`).

    `rest_as` is the server user the operator named for this app's REST calls that have no
    bridge action (None: the app's own user). It lives only in this signed payload, so no edit
    of host.db can name an identity the operator did not consent to. `enabled`: whether the
    operator lets the install run (`host/apps/switches.py`; None in a consent made before)."""
    consent_id = "cs_" + secrets.token_hex(12)
    payload = canonical_json(_payload(
        consent_id=consent_id, install_id=install_id, app_id=app_id, version=version,
        package_hash=package_hash, manifest_hash=manifest_hash, grants=grants,
        policy_revision=policy_revision, granted_at=now, kind=kind, seq=seq, rest_as=rest_as,
        enabled=enabled))
    kid, sig = keyring.sign(payload)
    return ConsentRow(consent_id, install_id, payload, kid, sig, now)


@dataclass(frozen=True)
class ConsentCheck:
    ok: bool
    problem: str | None = None
    policy_revision: str | None = None
    # Not ok, but not a verdict: signed by a key this host has not adopted from the shared
    # store yet (module docstring). The app waits; nothing is disabled.
    unverifiable: bool = False
    seq: int = 0  # the consent's number among the install's consents (0: made before numbers)
    # Whether the operator's latest switch lets the install run (None: a consent made before
    # switches were signed, whose answer is the chain's record: `switches.py`).
    enabled: bool | None = None


def check_consent(record: InstallRecord, row: ConsentRow | None,
                  keyring: Keyring, *, shared: bool = False, latest: int = 0) -> ConsentCheck:
    """Pure check of a record against its consent row (no writes). `shared`: the store is
    shared by several hosts, so a key this host does not know may be one not adopted yet.
    `latest`: the number the install's consent must reach (`consentseq.latest_seq`)."""
    if row is None:
        return ConsentCheck(False, "its consent record is missing")
    if shared and valid_kid(row.kid) and not keyring.knows(row.kid):
        return ConsentCheck(False, f"its consent record is signed by host key {row.kid}, which "
                            "this host does not know yet (not adopted from the shared store): "
                            "not yet verifiable", unverifiable=True)
    try:
        keyring.verify(row.kid, row.payload, row.signature)
    except InvalidSignature:
        return ConsentCheck(False, "its consent record's signature does not verify")
    try:
        p = json.loads(row.payload)
    except ValueError:
        return ConsentCheck(False, "its consent record is unreadable")
    expect = {
        "format": CONSENT_FORMAT, "consent_id": row.consent_id,
        "install_id": record.install_id, "app_id": record.app_id,
        "version": record.version, "package_hash": record.package_hash,
        "manifest_hash": record.manifest_hash, "grants": sorted(record.grants),
    }
    rest_as, enabled = p.get("rest_as"), p.get("enabled")
    if rest_as is not None and not isinstance(rest_as, str):
        return ConsentCheck(False, "its consent record names an unreadable REST identity")
    if enabled is not None and not isinstance(enabled, bool):
        return ConsentCheck(False, "its consent record's switch is unreadable")
    for key, value in expect.items():
        if p.get(key) != value:
            return ConsentCheck(False, f"the stored {key} differs from what the operator "
                                       "consented to")
    if record.manifest.manifest_hash() != record.manifest_hash:
        return ConsentCheck(False, "the stored manifest differs from the consented manifest")
    if not record.grants <= record.asked:
        return ConsentCheck(False, "grants exceed what the manifest asks for")
    seq = payload_seq(row.payload)
    if seq is None:
        return ConsentCheck(False, "its consent record's number is unreadable")
    if seq < latest:
        return ConsentCheck(False, f"it is not the install's latest consent (number {seq}; the "
                            f"operator's latest is number {latest}): an older consent was put "
                            "back")
    rev = p.get("policy_revision")
    return ConsentCheck(True, None, rev if isinstance(rev, str) else None, seq=seq,
                        enabled=enabled)


def signed_view(record: InstallRecord) -> tuple[object, ...]:
    """What of an install record its consent signs (`check_consent`): a running app whose
    record moved in any of these without a new generation is checked again before its record
    is used (a row edited behind the host's back must never reach a token)."""
    return (record.consent_id, record.app_id, record.version, record.package_hash,
            record.manifest_hash, record.grants)


def verify_install(record: InstallRecord, store: InstallStore, keyring: Keyring, *,
                   disable: bool = True) -> ConsentCheck:
    """Check `record` against its signed consent; on a problem, disable the app (generation
    bumped, every token dead) unless `disable=False`. Call on every load for use. A consent
    not yet verifiable (`ConsentCheck.unverifiable`) is never a reason to disable."""
    row = store.consent(record.consent_id)
    shared = store.store.dialect == "postgresql"
    latest, switch = latest_and_switch(store, record.install_id)
    result = check_consent(record, row, keyring, shared=shared, latest=latest)
    if result.unverifiable:
        # Adopt what is published now rather than at the next upkeep. A refusal here is the
        # serving host's follower's to record (once, in the audit chain), not this check's.
        adopt_keys(store.store, keyring, lambda _why: None)
        result = check_consent(record, row, keyring, shared=shared, latest=latest)
    if result.ok and record.enabled and result.enabled is False:
        # The operator's signed switch (`switches.py`): the latest consent says disabled.
        result = ConsentCheck(False, "the operator disabled it (its latest consent, signed at "
                              "the disable, says so); it was enabled again without the "
                              "operator")
    elif result.ok and record.enabled and result.enabled is None and switch == "disable":
        # A consent made before switches were signed: the chain's record of the operator's
        # last switch is what says the row may be enabled.
        result = ConsentCheck(False, "the operator disabled it (the audit chain's last enable "
                              "or disable for it is a disable); it was enabled again without "
                              "the operator")
    if result.ok:
        remember(store, record.install_id, result.seq)
    if not result.ok and not result.unverifiable and disable and record.enabled:
        store.set_enabled(record.install_id, False,
                          reason=f"tampering detected: {result.problem}")
    return result


def guardrail_problems(manifest: Manifest) -> list[str]:
    """Why no consent can be given to this manifest (DESIGN rule 10: admin-class roles are out of
    reach whatever anyone says). Empty when nothing is refused."""
    from policies.names import is_admin_class, normalize_role

    problems: list[str] = []
    for p in manifest.permission:
        for role in p.roles or []:
            norm = normalize_role(role)
            if norm is None or norm != role:
                problems.append(f"{p.name} declares role {role[:64]!r}, which is not a "
                                "canonical role name")
            elif is_admin_class(norm):
                problems.append(f"{p.name} asks to assign the admin-class role {role!r}: apps "
                                "can never be granted that, by any consent or policy")
    return problems
