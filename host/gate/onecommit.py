"""A call on the ledger's own store decided, charged, performed and recorded in one commit.

A host-served call on the store the ledger writes (persistence: a write, or a read under a
quota), and the embedded server's write when its tables share that store (`host.gate.onetx`),
commit their decision, quota units, seat check, the call itself and its outcome together
(`Ledger.admit_apply`, DESIGN rule 9). `Gate._admit_and_call` hands such a call here, and takes
the three-commit path itself when the answer is `FALL_BACK`. `allow_record`: the allow decision
either path admits a call with effects under.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from host.errors import GateError
from host.gate.actor import acting_user
from host.gate.onetx import AfterCommit
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import REFUNDABLE_ERRORS, Admission, Ledger
from host.ledger.quota import QuotaCharge
from host.ledger.refusals import refusal_budget
from host.store import Conn
from policies.policy import Policy
from policies.types import Decision
from policies.vocabulary import ActionSpec

# `in_one_transaction`'s answer when the write raised and nothing was recorded.
FALL_BACK = object()
# A creation's seat check inside that transaction: the ceiling, and the seats in use counted
# on its connection (given the op_ids of creations admitted elsewhere and not yet settled).
SeatCheck = tuple[int, Callable[[Conn, Sequence[str]], int]]


class Who(Protocol):
    """The app and install a call is made by (the gate's `Session`)."""

    @property
    def app_id(self) -> str: ...
    @property
    def install_id(self) -> str: ...


S = TypeVar("S", bound=Who)


class Gating(Protocol):
    """The parts of `gate.Gate` a one-commit call uses (the gate imports this module, so this
    module names what it needs instead of importing the gate back)."""

    @property
    def ledger(self) -> Ledger: ...

    def unadmitted(self, session: Any, action: str, args: Mapping[str, Any], exc: ValueError,
                   decision: Decision | None, policy: Policy, route: str | None,
                   ) -> GateError: ...
    def _over_quota(self, admission: Admission) -> GateError: ...
    def _count(self, allowed: bool) -> None: ...


def allow_record(session: Who, action: str, args: Mapping[str, Any],
                 rules: tuple[str, ...], policy: Policy, op_id: str | None, write: bool,
                 route: str | None) -> AuditRecord:
    """The allow decision the gate hands the ledger for a call with effects."""
    return AuditRecord(
        kind="decision", allowed=True, code="allow", rules=rules, policy_rev=policy.revision,
        app_id=session.app_id, install_id=session.install_id, action=action,
        args_digest=digest_args(args), op_id=op_id, write=write, route=route,
        actor=acting_user(action, args))


def in_one_transaction(gate: Gating, session: S, spec: ActionSpec, args: dict[str, Any],
                       rules: tuple[str, ...], policy: Policy,
                       charges: tuple[QuotaCharge, ...], op_id: str,
                       call: Callable[[Conn, S, dict[str, Any]], Any],
                       holds: Callable[[Conn], bool], seats: SeatCheck | None) -> Any:
    """A call on the ledger's own store (a write, or a read under a quota): decision,
    units, the call and its outcome commit together (`Ledger.admit_apply`, DESIGN rule 9);
    so does the embedded server's write when it shares the ledger's file (`host.gate.onetx`),
    with its seat check (`seats`: the ceiling and a counter on the transaction's connection)
    and its events emitted only after the commit.
    A read the store refuses before anything (a missing key) is recorded and refunded in
    that transaction and raised. Any other failure left nothing behind: `FALL_BACK`
    sends the call down the three-commit path, which records the refusal (and gives the
    units back) exactly as before."""
    record = allow_record(session, spec.name, args, rules, policy, op_id, spec.write, None)
    failed: list[BaseException] = []
    recorded: list[Exception] = []  # refusals the ledger was told to record

    lent: list[AfterCommit] = []  # a place in the server's commit order, taken in `apply`

    def apply(c: Conn) -> Any:
        try:
            value = call(c, session, args)
        except Exception as exc:
            failed.append(exc)
            raise
        if isinstance(value, AfterCommit):
            lent.append(value)
        return value

    def refused(exc: Exception) -> str | None:
        code = _refused_before_anything(exc)
        if code is not None:
            recorded.append(exc)
        return code
    try:
        try:
            admission, value = gate.ledger.admit_apply(record, charges, apply,
                                                       refusal_budget(session.install_id),
                                                       refused=refused, holds=holds,
                                                       seats=seats)
        except BaseException:
            for taken in lent:  # rolled back: its place goes, or no later event leaves
                taken.abandon()
            raise
    except Exception as exc:
        if recorded and exc is recorded[-1]:
            gate._count(False)  # recorded and refunded in the call's own transaction
            raise
        if failed:
            return FALL_BACK
        if isinstance(exc, ValueError):  # raised by the admission, before `apply`
            raise gate.unadmitted(session, spec.name, args, exc, None, policy, None) from None
        raise
    if not admission.allowed:
        raise gate._over_quota(admission)
    gate._count(True)
    if isinstance(value, AfterCommit):
        value.then()
        return value.value
    return value


def _refused_before_anything(exc: Exception) -> str | None:
    """The code of a host-served read's refusal that changed nothing and gives its units back
    (`REFUNDABLE_ERRORS`: a missing key is `not_found`), else None."""
    if isinstance(exc, GateError) and exc.code in REFUNDABLE_ERRORS:
        return exc.code
    return None
