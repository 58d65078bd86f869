"""An outbound HTTP request's quota, taken before anything of it leaves the host.

Two things leave the host for an `http.request` besides the request itself: the DNS query
that looks its host name up (sent to whoever serves that name, before the policy can decide:
the engine checks each address the host will connect to), and every redirect hop the host
follows. Both are charged first:

- `full_quota`: whether the call's quotas have a unit free, asked before the lookup. A call over
  its quota is refused (`quota_refusal`, the record an admission over quota writes) without
  sending a query: an app out of quota could otherwise make the host query its listed names,
  whose owner reads them (a side channel and a cost), as often as it liked. The quotas a call
  is charged never depend on its address (`Policy.charges`: by app, install or workspace, and
  action), so the refusal needs none. Read, not reserved: the admission after the decision
  stays the authority, and a unit taken between the two refuses there, as before.
- `admit_hop`: each redirect hop after the first is admitted as a request of its own (decided,
  its units reserved and its decision durable) before it is sent; one over the quota ends the
  chain with `quota_exceeded`, and the hops that went out keep their units. One unit covered a
  whole chain of up to `MAX_REDIRECTS + 1` requests, so a quota of N sent up to 4N. `end_hop`
  records each admitted hop's outcome: a hop that failed before its first byte was handed to
  the socket gets its unit back, as a request refused before sending does (`GateError.sent`).
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from host.errors import GateError, RefusalBudgetExceeded
from host.gate.installview import InstallView
from host.gate.onecommit import Who, allow_record
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import REFUNDABLE_ERRORS, Admission, Ledger, Stale
from host.ledger.quota import QuotaCharge, QuotaState, denial_message, seems_full
from host.ledger.refusals import refusal_budget
from host.store import Conn
from policies.policy import Policy
from policies.types import Decision

ACTION = "http.request"


class QuotaFull(Exception):
    """A call's quota has no unit free (`state`): refused before its host name is looked up."""

    def __init__(self, state: QuotaState) -> None:
        super().__init__(state.key)
        self.state = state


def full_quota(ledger: Ledger, charges: Sequence[QuotaCharge]) -> QuotaState | None:
    """The first of `charges` with no unit free now, else None. Each is read first without a
    transaction (`seems_full`: ~10 us, where the log's transaction costs several times that
    on every request); one that looks full is read again on the log's transaction, so a refund
    held for the group commit counts as given back, as the admission would count it, and the
    store's clock decides as it does there."""
    conn = ledger.store.conn()
    now = float(ledger.clock.now())
    for charge in charges:
        if not seems_full(conn, charge, now):
            continue
        state = ledger.quota_state(charge.key, charge.limit, charge.window_s)
        if charge.limit <= 0 or state.next_free_at is not None:
            return state
    return None


def quota_refusal(ledger: Ledger, who: Who, args: Mapping[str, Any], state: QuotaState,
                  policy: Policy) -> GateError:
    """Audit a call refused on `state`, a full quota, before its lookup (as an admission over
    quota records it: `quota_exceeded`, the quota's state, charged to the refusal budget), and
    build the error the app sees."""
    message = denial_message(state, float(ledger.clock.now()))
    _seq, over = ledger.deny_within(AuditRecord(
        kind="decision", allowed=False, code="quota_exceeded", message=message[:500],
        policy_rev=policy.revision, quota=(state,), app_id=who.app_id,
        install_id=who.install_id, action=ACTION, args_digest=digest_args(args),
        detail="refused before its host name was looked up"), refusal_budget(who.install_id))
    return (RefusalBudgetExceeded if over else GateError)("quota_exceeded", message)


class Decided(Protocol):
    """What the gate's `_decide` returns (`gate.Decided`), as far as a hop needs it."""

    @property
    def decision(self) -> Decision: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def facts(self) -> dict[str, Any]: ...
    @property
    def version(self) -> int: ...


class _Policies(Protocol):
    def current(self) -> Policy: ...


class Gating(Protocol):
    """The parts of `gate.Gate` a hop's admission uses (the gate imports this module)."""

    @property
    def ledger(self) -> Ledger: ...
    @property
    def installs(self) -> InstallView: ...
    @property
    def policy(self) -> _Policies: ...

    def _decide(self, session: Any, action: str, args: dict[str, Any],
                route: str | None = None, extra_facts: Mapping[str, Any] | None = None, *,
                optimistic: bool = False) -> Decided: ...
    def unadmitted(self, session: Any, action: str, args: Mapping[str, Any], exc: ValueError,
                   decision: Decision | None, policy: Policy, route: str | None,
                   ) -> GateError: ...
    def _over_quota(self, admission: Admission) -> GateError: ...


@dataclass(frozen=True)
class Hop:
    """An admitted redirect hop: the addresses it was decided with, and its decision."""

    ips: list[str]
    seq: int
    op_id: str
    app_id: str
    install_id: str


def admit_hop(gate: Gating, session: Who, args: dict[str, Any], number: int,
              call_op: str | None, tries: int) -> Hop:
    """Decide redirect hop `number` (2 and on) of the call `call_op` as a new request and admit
    it (its units, an intent, its decision record saying how many hops the call has been
    charged), before it is sent. Refusals raise the gate's error; a full quota's says which hop
    was not sent."""
    for _ in range(tries):
        try:
            decided = gate._decide(session, ACTION, args)
        except GateError as exc:
            raise _on_hop(exc, number) from None
        decision, policy, version = decided.decision, decided.policy, decided.version
        op_id = "op_" + secrets.token_hex(12)
        record = replace(
            allow_record(session, ACTION, args, decision.rules, policy, op_id, True, None),
            detail=f"redirect hop {number} of {call_op or 'the request'} "
                   f"({number} hops charged to it)")

        def holds(c: Conn, version: int = version, revision: str = policy.revision) -> bool:
            # as `Gate._admit_and_call`: a change committed since the decision decides again
            return (gate.installs.version_in(c) == version
                    and gate.policy.current().revision == revision)
        try:
            admission = gate.ledger.admit(record, decision.quotas, None, None,
                                          refusal_budget(session.install_id), holds)
        except Stale:
            continue
        except ValueError as exc:
            raise gate.unadmitted(session, ACTION, args, exc, decision, policy, None) from None
        if not admission.allowed:
            raise _on_hop(gate._over_quota(admission), number)
        return Hop(list(decided.facts.get("resolved_ips") or []), admission.seq, op_id,
                   session.app_id, session.install_id)
    raise GateError("internal", f"redirect hop {number}: the app's install changed {tries} "
                    "times while it was decided; it was not sent")


def _on_hop(exc: GateError, number: int) -> GateError:
    """A hop's quota refusal, saying which hop was not sent (other refusals as they were)."""
    if exc.code != "quota_exceeded":
        return exc
    return type(exc)(exc.code, f"redirect hop {number} was not sent: {exc.message} (the hops "
                     "before it went out and keep their units)")


def end_hop(ledger: Ledger, hop: Hop, sent: bool, error: BaseException | None) -> None:
    """Record how an admitted hop ended: answered (its units kept; the record may wait for the
    group commit, as a call's success does: `Gate._outcome_may_wait`), or failed, keeping its
    units unless it failed before its first byte went out with an error that refunds."""
    if error is None:
        if ledger.holds_reads:
            ledger.hold_outcome(hop.seq, hop.op_id, hop.app_id, hop.install_id, ACTION)
        else:
            ledger.outcome(hop.seq, hop.op_id, True, None, refund=False)
        return
    code = error.code if isinstance(error, GateError) else "internal"
    ledger.outcome(hop.seq, hop.op_id, False, code,
                   refund=code in REFUNDABLE_ERRORS and not sent)
