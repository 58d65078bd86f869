"""The operator is audited too (DESIGN rule 14): what an operator does is a record in the chain.

Installs, consents and grant changes, enable/disable, settings changes (key names only, never
values), policy loads, publisher trust and untrust, host key generation, rotation and
retirement, updates and uninstalls each append an `operator.<what>` record to the same
hash chain the gate writes, with `actor` = the OS account that ran the command.

Audit before act, as for a bridge call (rule 9): `audited(...)` appends the record *before* the
change and raises `AuditError` when it cannot, so the change is never made unrecorded. Nor is
it chained onto a chain that does not verify from its anchor (`AuditLog.verify_from_anchor`,
which walks only the records since the anchor): as `serve` refuses a broken chain, so does
every operator command, naming `stockade audit verify` and `serve --degraded`. The
block then makes the change; if it raises, an `operator.outcome` record with `ok=false` names
the failure (the change did not complete), and one with `ok=true` closes a change that did, with
whatever the change decided (`Act.note`: a new key id, the generation). A record with no
outcome is a change interrupted by a crash: the chain says so instead of guessing.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from host.clock import Clock, SystemClock
from host.home import Home
from host.keys.keyring import Keyring
from host.ledger.audit import AuditLog
from host.ledger.records import AuditError, AuditRecord
from host.store import StoreTarget

_log = logging.getLogger("stockade.operator")


def operator_actor() -> str:
    """Who runs this process: the OS account (and the sudo caller when run through sudo).

    SUDO_USER is only a label set by sudo for root's session; it is recorded beside the real
    account, never instead of it."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    via = os.environ.get("SUDO_USER")
    if uid == 0 and via and via.isprintable() and len(via) <= 64:
        return f"{name} (sudo from {via})"
    return name


@dataclass
class Act:
    """One audited operator change in progress: `note` adds what the change decided."""

    seq: int
    record: AuditRecord
    notes: dict[str, Any] = field(default_factory=dict)

    def note(self, **fields: Any) -> None:
        """Fields for the outcome record (allow-listed like any record's)."""
        self.notes.update(fields)


@contextlib.contextmanager
def audited(db_path: StoreTarget | AuditLog, kind: str, *, clock: Clock | None = None,
            actor: str | None = None, **fields: Any) -> Iterator[Act]:
    """Append `operator.<kind>` before the block runs; record how it ended afterwards.

    Raises `AuditError` (and the block never runs) when the record cannot be written, or the
    chain it would be chained onto does not verify from the anchor."""
    log = db_path if isinstance(db_path, AuditLog) else AuditLog(db_path, clock or SystemClock())
    own = not isinstance(db_path, AuditLog)
    try:
        log.verify_from_anchor()
        # `actor`: who acted when it is not this process's OS account alone (the console
        # names its signed-in operator).
        record = AuditRecord(kind=f"operator.{kind}", actor=(actor or operator_actor())[:128],
                             **fields)
        seq = log.append(record)
        act = Act(seq, record)
        try:
            yield act
        except BaseException as exc:
            with contextlib.suppress(AuditError, ValueError, TypeError):
                log.append(_outcome(act, ok=False, code=_failure_code(exc),
                                    detail=str(exc)[:400] or type(exc).__name__))
            raise
        try:
            log.append(_outcome(act, ok=True, code="ok", **act.notes))
        except AuditError as exc:
            # The change is made and its record is durable; only the closing outcome is
            # missing, which the chain shows as an interrupted change. Saying "not done"
            # here would be false.
            _log.warning("operator.%s was applied but its outcome record was not written: %s",
                         kind, exc)
    finally:
        if own:
            log.close()  # anchors the head (a verified one): a CLI run leaves none unpinned


def append_operator(db_path: StoreTarget | AuditLog, kind: str, *, clock: Clock | None = None,
                    **fields: Any) -> int:
    """One `operator.<kind>` record for something that has already been decided by a running
    host (a policy load it is about to use). Raises `AuditError` when it cannot be written."""
    with audited(db_path, kind, clock=clock, **fields) as act:
        return act.seq


def audit_policy_load(log: AuditLog, revision: str, folder: Path, clock: Clock,
                      host: str = "") -> int:
    """Rule 14: the policy a host decides with is a record in the chain before any decision
    uses it (a record that cannot be written stops the start). `host`: which host, when
    several share the chain (each loads its own folder: docs/SCALE.md)."""
    return append_operator(log, "policy_load", clock=clock,
                           detail=f"revision {revision} from {folder}{host}")


def open_keyring(home: Home, clock: Clock | None = None) -> Keyring:
    """The home's host signing keyring; generating its first key is an audited operator act."""
    if Keyring.exists(home.keys_dir):
        return Keyring.open(home.keys_dir)
    with audited(home.host_store, "key_generate", clock=clock) as act:
        ring = Keyring.open(home.keys_dir)
        act.note(kid=ring.current)
    return ring


def _outcome(act: Act, *, ok: bool, code: str, **fields: Any) -> AuditRecord:
    base = act.record
    rec = AuditRecord(kind="operator.outcome", actor=base.actor, app_id=base.app_id,
                      install_id=base.install_id, ref_seq=act.seq, ok=ok, code=code)
    return replace(rec, **fields) if fields else rec


def _failure_code(exc: BaseException) -> str:
    # typer.Exit / SystemExit carry an exit code: the command refused after the record.
    code = getattr(exc, "exit_code", None)
    if code is None and isinstance(exc, SystemExit):
        code = exc.code
    if isinstance(code, int):
        return f"exit_{code}"
    return type(exc).__name__.lower()[:32]


__all__ = ["Act", "AuditError", "append_operator", "audit_policy_load", "audited", "open_keyring",
           "operator_actor"]
