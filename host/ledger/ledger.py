"""The ledger: quota reservation and the audit chain in one transaction (the gate's hot path).

A bridge write costs two commits:

1. `admit` — BEGIN IMMEDIATE; check every quota charge and the seat ceiling; append the decision
   record (allow, or deny with code `quota_exceeded`); reserve the units and note the pending
   intent if allowed; COMMIT. The decision is durable before the server sees the call ("audit
   before act"); if anything fails the exception propagates and the gate refuses the call.
2. `outcome` — BEGIN IMMEDIATE; append the outcome record; refund the units if asked; clear the
   intent; COMMIT.

A write whose data lives in this ledger's own store (an app's persistence) costs one commit:
`admit_apply` appends the decision, reserves its units, applies the write and appends the
outcome in one transaction (DESIGN rule 9's second branch), so no intent is ever left for it.

A read (nothing reserved, no outcome to follow) in a running host costs no commit of its own:
its allow record waits for a group commit (`host.ledger.groupcommit`, DESIGN rule 9), durable
within 10 ms and before any later write on the log. A read under a quota (the shipped baseline
rates every call) costs one: `admit` takes its units with its decision, and its success is
held for the group commit (`hold_outcome`), so it commits with the next admission. So is a
write's success against the embedded server, whose op log settles it after a crash, and a
host-served write's; and the server's refusal of any of these, whose refund commits with its
record before any later admission (`hold_refusal`).

Refund rule (the gate applies it; the outcome record says which way it went):
- the server answered with an error raised *before* it changed anything (`not_found`,
  `conflict`, `invalid_argument`; see `REFUNDABLE_ERRORS`) → `refund=True`, the units come back;
- success → units kept;
- unknown outcome (timeout, the connection dropped, the host crashed) → units kept: the write
  may have happened, and giving the unit back could let N+1 through. Crash reconciliation
  (`pending_intents`, then `server.was_applied(op_id)`) may refund later, with
  `reconciled=True` in the outcome record.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from host.clock import Clock
from host.ledger.argsdigest import ArgsKey
from host.ledger.audit import ANCHOR_EVERY, AuditLog, Intent, append_in
from host.ledger.groupcommit import GROUP_COMMIT_S, ReadBatch
from host.ledger.quota import (
    Charge,
    QuotaCharge,
    QuotaDenied,
    QuotaState,
    QuotaStore,
    Reservation,
    refund_in,
    reserve_in,
    state_in,
)
from host.ledger.readbody import ReadBodies
from host.ledger.records import (
    AuditError,
    AuditRecord,
    cap_text,
    check_field,
    quota_json,
    record_json,
)
from host.ledger.refusals import refund_within
from host.ledger.unsettled import Unsettled
from host.server.adapter import HOST_ACTIONS
from host.store import Conn, StoreTarget, open_store
from policies import quota as quota_rules

# Counts the seats in use (DESIGN rules 8 and 11): given the op_ids of the creations admitted
# but not settled, it returns the server's active app-created users plus those of the op_ids
# the server has not applied, read in one snapshot of the server. The server's users are the
# truth whatever route made or reactivated them, so no release can free a seat twice.
SeatCounter = Callable[[Sequence[str]], int]

T = TypeVar("T")

# Server error codes that mean "refused before anything was applied": refunding them cannot let
# more than N real writes through. Anything else (timeout, internal, unknown) keeps the unit.
# (The set lives in `policies.quota`, shared with the author harness.)
REFUNDABLE_ERRORS = quota_rules.REFUNDABLE_ERRORS


class LedgerError(RuntimeError):
    """A ledger call that contradicts the ledger's state (unknown intent, double refund)."""


class Stale(Exception):
    """An admission's `holds` found the decision's inputs changed before its transaction took
    the write lock: nothing was written or reserved; the caller decides again."""


# What an admission checks first, inside its transaction: whether the inputs its decision was
# made from still hold (the gate's: the install change counter it decided under). The
# transaction holds the store's write lock, so no change can commit between it and the COMMIT.
Holds = Callable[[Conn], bool]


@dataclass(frozen=True)
class Admission:
    """The result of `admit`. `reservation` is None when denied; `message` names the full quota.
    `seq` is 0 for a read whose record waits for its group commit (it has no seq yet).
    `over_budget`: the denial passed the install's refusal budget (see `deny_within`); then
    `seq` is the summary record's, or -1 when this window's summary was written already."""

    seq: int
    allowed: bool
    reservation: Reservation | None
    quota_state: tuple[QuotaState, ...]
    message: str | None
    over_budget: bool = False


class Ledger:
    """Quota + audit over one `host.db` connection per thread."""

    def __init__(self, db_path: StoreTarget, clock: Clock, *, anchor_path: Path | None = None,
                 key_path: Path | None = None, anchor_every: int | None = None,
                 group_reads: bool = False, group_window_s: float = GROUP_COMMIT_S,
                 host_id: str | None = None, store_clock: bool = True) -> None:
        """`group_reads`: group-commit reads' records within `group_window_s` (at most 10 ms,
        DESIGN rule 9; see `host.ledger.groupcommit`). Off, each record is durable before its
        call returns (every process but a running host: the CLI's records are each durable).
        `store_clock`: quota windows are timed by the store's clock where several machines
        share it (`Store.clock_in`: a PostgreSQL store's, read under its write lock), so hosts
        whose clocks disagree admit no more than the limit between them; False times them by
        `clock` on every store (a test that sets the time by hand)."""
        self.store = open_store(db_path)
        #: Tags this host's unfinished calls, for the survivor that settles them if it dies.
        self.host_id = host_id
        self.clock = clock
        self._store_clock = store_clock
        self.quotas = QuotaStore(self.store, clock, store_clock=store_clock)
        self.audit = AuditLog(self.store, clock, anchor_path=anchor_path, key_path=key_path,
                              anchor_every=anchor_every or ANCHOR_EVERY)
        self.batch: ReadBatch | None = None
        self._read_bodies = ReadBodies()
        self.args_key = ArgsKey(self.audit._key)  # what keys each stored args_digest
        # Ended calls whose outcome could not be learnt yet, asked about again by the upkeep.
        self.unsettled = Unsettled()
        # Set once this host's lease on a shared store is lost (`refuse_admissions`).
        self._refusing: str | None = None
        # While a shared store's lease is held: the monotonic time after which this host admits
        # nothing until the lease is beaten again (`admit_until`). None: no such lease.
        self._admit_until: float | None = None
        if group_reads:
            self.batch = ReadBatch(self.store, group_window_s, self._committed,
                                   appended=self.audit.appended)
            self.audit.batch = self.batch

    def _committed(self, first: int, last: int) -> None:
        """Group-committed records first..last: anchor as `after_append` would for each."""
        every = self.audit.anchor_every
        if first == 1 or last // every > (first - 1) // every:
            self.audit.anchor_quietly()

    def _now_in(self, c: Conn) -> float:
        """The time quota windows are read at inside this ledger's write transaction `c`: the
        store's clock where several machines share the store (`store_clock`), else `clock`."""
        if self._store_clock:
            at = self.store.clock_in(c)
            if at is not None:
                return at
        return float(self.clock.now())

    def refuse_admissions(self, why: str) -> None:
        """Admit no more calls (`admit`, `admit_apply`, `hold_read` raise `LedgerError`): this
        host lost its lease on a shared store, so another host may settle what it admits
        (`host.ledger.storelease`). Outcomes of calls already admitted are still written."""
        self._refusing = why

    def admit_until(self, deadline: float) -> None:
        """Admit calls only until `deadline` (`time.monotonic()`), each lease beat moving it on:
        a host whose beats stop (its upkeep stuck on an unreachable lease connection) stops
        admitting before another host may settle its calls, without waiting for a sweep to
        notice (`host.ledger.storelease`)."""
        self._admit_until = deadline

    def _check_admitting(self) -> None:
        self.audit._check_open()
        if self._refusing is not None:
            raise LedgerError(f"this host admits no calls: {self._refusing}")
        if self._admit_until is not None and time.monotonic() > self._admit_until:
            raise LedgerError("this host admits no calls: its lease on the shared store was not "
                              "renewed in time")

    def admit(self, record: AuditRecord, charges: Sequence[QuotaCharge],
              seat_ceiling: int | None = None, seats_in_use: SeatCounter | None = None,
              refusal_budget: QuotaCharge | None = None, holds: Holds | None = None,
              ) -> Admission:
        """Check and reserve every charge (and a seat), and append the decision, atomically.

        With a `seat_ceiling`, `seats_in_use` counts the seats from the truth inside this
        transaction (which holds the store's write lock, so two hosts never both take the last
        seat): a creation admitted here is counted as pending until its outcome settles it.

        `record` is the gate's allow decision (app, install, action, args_digest, rules,
        policy_rev, op_id, write). If a quota is full the stored record becomes a denial with
        code `quota_exceeded` and a message naming the quota, its limit/window and when a unit
        frees. Raises (and reserves nothing) if the record cannot be written, and `Stale` if
        `holds` (checked first, in the transaction) says the decision's inputs changed.
        """
        self._check_admitting()
        if seat_ceiling is not None and seats_in_use is None:
            raise ValueError("a seat ceiling needs a seat counter (seats are counted, not kept)")
        takes_units = bool(charges) or seat_ceiling is not None
        intent = record.write is True or takes_units
        if intent and not record.op_id:
            raise AuditError("an admitted operation needs an op_id (refunds, reconciliation)")
        body = self.args_key.body(record)
        if (self.batch is not None and not intent and record.op_id is None
                and record.route is None):
            # A read (nothing reserved, no outcome to follow): its allow record is held for the
            # group commit, durable within the window and before any later write on this log
            # commits (DESIGN rule 9). It gets its seq when committed: 0 here.
            body.update(kind="decision", allowed=True)
            body.setdefault("code", "allow")
            self.batch.add(record_json(body), float(self.clock.now()))
            return Admission(0, True, None, (), None)
        with self.audit.transaction() as c:
            now = self._now_in(c)
            _check_holds(c, holds)
            seats = None
            if seat_ceiling is not None and seats_in_use is not None:
                seats = (seat_ceiling, _seats_used(c, seats_in_use))
            seq, result, states, over = _verdict_in(c, body, charges, record.op_id or "", now,
                                                    seats, refusal_budget)
            if isinstance(result, QuotaDenied):
                admission = Admission(seq, False, None, states, result.message, over)
            else:
                if intent:
                    c.execute(
                        "INSERT INTO audit_intents(seq, op_id, ts, app_id, install_id, action,"
                        " write, keys, seat, host_id) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (seq, record.op_id, now, record.app_id, record.install_id,
                         record.action, 1 if record.write else 0,
                         json.dumps(result.keys), 1 if result.seat else 0, self.host_id),
                    )
                admission = Admission(seq, True, result if takes_units else None, states, None)
        self.audit.after_append(seq)
        return admission

    def admit_apply(self, record: AuditRecord, charges: Sequence[QuotaCharge],
                    apply: Callable[[Conn], T], refusal_budget: QuotaCharge | None = None, *,
                    refused: Callable[[Exception], str | None] | None = None,
                    holds: Holds | None = None,
                    seats: tuple[int, Callable[[Conn, Sequence[str]], int]] | None = None,
                    ) -> tuple[Admission, T | None]:
        """DESIGN rule 9's second branch, for a call whose data lives in this ledger's own
        store (an app's persistence, or the embedded server's tables when they share its
        file): the decision, its units, the call (`apply`, on this transaction's connection)
        and its outcome in one transaction. Nothing can be left half-done, so no intent row
        is kept. A full quota records the denial as `admit` does and applies nothing. If
        `apply` raises, everything rolls back — no record, no unit — and the error
        propagates: the caller then takes the three-commit path (`admit`, the call,
        `outcome`), which records the refusal as it always has.

        A read (`record.write` False: it wrote nothing) may instead be refused in the same
        transaction: `refused` maps what its `apply` raised to an error code (a missing key:
        `not_found`), and the refusal is recorded and refunded as `outcome(...,
        refund=True)` would, then the exception is raised once that transaction has
        committed. `holds` as in `admit`. `seats` (a ceiling and a counter reading this
        transaction's connection) is a creation's seat check when the server's data shares
        this store (`host.gate.onetx`): it holds the write lock, so two hosts never both
        take the last seat."""
        self._check_admitting()
        if not record.op_id or (record.write is not True and not charges):
            raise AuditError("admit_apply is for an admitted call with an op_id")
        body = self.args_key.body(record)
        value: T | None = None
        refusal: Exception | None = None
        with self.audit.transaction() as c:
            now = self._now_in(c)
            _check_holds(c, holds)
            seat = None
            if seats is not None:
                ceiling, count = seats
                seat = (ceiling, _seats_used(c, lambda pending: count(c, pending)))
            seq, result, states, over = _verdict_in(c, body, charges, record.op_id, now, seat,
                                                    refusal_budget)
            if isinstance(result, QuotaDenied):
                admission = Admission(seq, False, None, states, result.message, over)
                last = seq
            else:
                code: str | None = None
                refunded = False
                try:
                    value = apply(c)
                except Exception as exc:
                    code = refused(exc) if refused is not None and not record.write else None
                    if code is None:
                        raise
                    refusal = exc
                    install = body.get("install_id")
                    refunded = refund_within(c, result, install if isinstance(install, str)
                                             else None, now)
                # The outcome `outcome` would write (the intent's app, install and action are
                # the decision's own, validated above).
                done = _outcome_body(seq, record.op_id, code is None, code, refunded,
                                     False, None, None,
                                     tuple(body.get(k) for k in ("app_id", "install_id",
                                                                 "action")))
                last = append_in(c, record_json(done), now)
                admission = Admission(seq, True, result, states, None)
        for n in range(max(seq, 1), last + 1):
            self.audit.after_append(n)
        if refusal is not None:
            raise refusal
        return admission, value

    @property
    def holds_reads(self) -> bool:
        """Reads' records wait for a group commit here (`hold_read` may be called)."""
        return self.batch is not None

    def hold_read(self, app_id: str, install_id: str, action: str, rules: tuple[str, ...],
                  policy_rev: str, args_digest: str) -> None:
        """`admit` for a read's allow record (no write, no charge, no seat, no route), by the
        read's template (`host.ledger.readbody`): the same body, held for the group commit."""
        self._check_admitting()
        if self.batch is None:
            raise AuditError("reads are not group-committed on this ledger: use admit")
        body = self._read_bodies.body(app_id, install_id, action, rules, policy_rev,
                                      self.args_key.mac(args_digest))
        self.batch.add(body, float(self.clock.now()))

    def deny_within(self, record: AuditRecord, budget: QuotaCharge) -> tuple[int, bool]:
        """Append a denial charged against the install's refusal budget (DESIGN rule 13).

        Within the budget the denial is recorded as `deny` would. Past it nothing is recorded
        per refusal: the first refusal over the budget in a window appends one summary record,
        later ones append nothing. Returns (seq, over_budget); seq is -1 when nothing was
        written. The charge and the record share one transaction, so hosts racing on one home
        record at most `budget.limit` refusals and one summary per window between them.
        """
        if not record.code:
            raise AuditError("a denial needs a code (permission_denied, policy_denied, ...)")
        self.audit._check_open()
        body = self.args_key.body(replace(record, kind="decision", allowed=False))
        with self.audit.transaction() as c:
            seq, over = _refusal_in(c, body, self._now_in(c), budget)
        if seq >= 0:
            self.audit.after_append(seq)
        return seq, over

    def deny(self, record: AuditRecord) -> int:
        """Append a denial decided before quotas (permission, policy, guardrail). Returns seq."""
        if not record.code:
            raise AuditError("a denial needs a code (permission_denied, policy_denied, ...)")
        return self.audit.append(self.args_key.record(replace(record, kind="decision",
                                                              allowed=False)))

    def append(self, record: AuditRecord) -> int:
        """Append any other record (lifecycle, supervisor, consent, ...). Returns seq."""
        return self.audit.append(self.args_key.record(record))

    def outcome(self, seq: int, op_id: str, ok: bool, error_code: str | None, refund: bool,
                *, reconciled: bool = False, status: int | None = None,
                route: str | None = None) -> int:
        """Record how the admitted call `seq` ended; give its units back if `refund`.

        See the module docstring for when to refund. `status` and `route` are a REST bridge
        call's HTTP status and route (`ok` is then False for any status of 400 or more).
        Raises LedgerError when asked to refund
        an operation that holds nothing (already settled, or never admitted), or when `op_id`
        does not match the decision.
        """
        if refund and ok:
            raise LedgerError("a successful operation keeps its units (refund=False)")
        self.audit._check_open()
        try:
            with self.audit.transaction() as c:
                out = _outcome_in(c, seq, op_id, ok, error_code, refund, reconciled, status,
                                  route, self._now_in(c))
        except BaseException:
            # The call has ended and its end could not be written (the store failed it: full,
            # locked past the wait, unreachable): its intent stays pending with its units, and
            # the upkeep asks the server about it each round (`host.ledger.unsettled`). Before,
            # only a settlement at the host's next start gave a refusal's units back.
            if not reconciled:  # a settlement's own failure: that settlement asks again
                self.unsettled.note(op_id)
            raise
        self.audit.after_append(out)
        return out

    def hold_outcome(self, seq: int, op_id: str, app_id: str, install_id: str, action: str,
                     *, status: int | None = None, route: str | None = None) -> None:
        """`outcome(seq, op_id, True, None, refund=False)` held for the group commit: for a
        success whose decision and units are durable already and whose truth survives a
        crash without this record (the gate decides: `Gate._outcome_may_wait`; a rated read,
        or a server write the server's op log settles). The record and the removal of the
        intent commit together, in the next commit on the log; until then the intent stays,
        so a crash leaves the call to `settle` (a read keeps its units, a write is asked of
        the server). `app_id`, `install_id` and `action` are the decision's own (its intent
        row holds the same). A success keeps its units, so nothing about the quota waits; a
        refusal, which may refund, waits through `hold_refusal`, or goes through `outcome`."""
        self.audit._check_open()
        if self.batch is None:
            raise AuditError("outcomes are not group-committed on this ledger: use outcome")
        body = _outcome_body(seq, op_id, True, None, False, False, status, route,
                             (check_field("app_id", app_id), check_field("install_id", install_id),
                              check_field("action", action)))
        self.batch.add(record_json(body), float(self.clock.now()), clears=seq)

    def hold_refusal(self, seq: int, op_id: str, error_code: str, refund: bool, *,
                     status: int | None = None, route: str | None = None) -> None:
        """`outcome(seq, op_id, False, error_code, refund)` held for the group commit, for a
        refusal whose settlement after a crash without this record keeps quotas whole (the
        gate decides, as for `hold_outcome`): the record, the removal of the intent and the
        refund run together inside the next commit on the log (`ReadBatch.defer`), which is
        before any later admission on this host, so no call of this host ever sees the unit
        still taken. A crash before it leaves the intent to `settle`: a write the server's op
        log says was not applied is refunded as `not_applied`; a read or a host-served call
        keeps its unit as `outcome_unknown` (stricter, never looser)."""
        self.audit._check_open()
        if self.batch is None:
            raise AuditError("outcomes are not group-committed on this ledger: use outcome")
        code = check_field("code", error_code)
        self.batch.defer(lambda c: _outcome_in(c, seq, op_id, False, code, refund, False,
                                               status, route, self._now_in(c),
                                               refund_if_held=True))

    def quota_state(self, key: str, limit: int, window_s: float) -> QuotaState:
        """Used units in the window ending now, and when the next frees (None if one is free).
        On the log's transaction, so a refund this host holds for the group commit is counted
        as given back, as the next admission would count it."""
        with self.audit.transaction() as c:
            return state_in(c, key, limit, window_s, self._now_in(c))

    def seats_in_use(self, counter: SeatCounter) -> int:
        """Seats in use now: the server's active app-created users and the creations pending
        (held outcomes committed first, as for `quota_state`)."""
        with self.audit.transaction() as c:
            return _seats_used(c, counter)

    def pending_intents(self, host_id: str | None = None) -> list[Intent]:
        """Allowed decisions without an outcome (after a crash; only `host_id`'s when given):
        `settle` reconciles them with the server."""
        return self.audit.pending_intents(host_id)

    def settle(self, was_applied: Callable[[str], bool | None], host_id: str | None = None, *,
               untagged: bool = False, until: float | None = None) -> int:
        """Settle decisions audited whose outcome was never written (a host died mid-call):
        every one when neither `host_id` nor `untagged` is given (the single-machine lease
        calls this only while no other host serves), else only `host_id`'s or the untagged
        ones (`host.ledger.storelease`). Returns how many were settled.

        The server says whether each was applied: applied keeps its units; not applied gives
        them back. "No such op" proves nothing, and the unit is kept as `outcome_unknown`, for
        an action the host serves itself (`HOST_ACTIONS`: an outbound HTTP request may have
        gone out, a persistence write or a REST call on a route with no bridge action may have
        written, and none records its op_id where the server looks) and for a read (no op log:
        it may have been served). A success that waits for the group commit (`hold_outcome`)
        can leave its intent here too. `was_applied` None: the server cannot say now, and the
        intent stays pending (its units reserved) for a later settlement. `until`
        (`time.monotonic()`): no intent is asked about after it; the rest stay pending for the
        next settlement (a lease sweep's budget, `host.ledger.storelease.SETTLE_BUDGET_S`)."""
        count = 0
        for intent in self.audit.pending_intents(host_id, untagged=untagged):
            if until is not None and time.monotonic() >= until:
                break
            applied = was_applied(intent.op_id)
            if applied is None:
                continue
            unknown = not applied and (intent.action in HOST_ACTIONS or not intent.write)
            self.outcome(intent.seq, intent.op_id, applied, None if applied else (
                "outcome_unknown" if unknown else "not_applied"),
                refund=not applied and not unknown, reconciled=True)
            count += 1
        return count

    def checkpoint(self) -> None:
        """Background upkeep: copy the WAL into the database and anchor the audit head."""
        self.store.checkpoint("PASSIVE")
        self.audit.anchor_quietly()

    def close(self) -> None:
        """Anchor the audit head and close this thread's connection."""
        self.audit.close()


def _outcome_in(c: Conn, seq: int, op_id: str, ok: bool, error_code: str | None, refund: bool,
                reconciled: bool, status: int | None, route: str | None, now: float, *,
                refund_if_held: bool = False) -> int:
    """Inside the caller's transaction: claim `seq`'s intent, give its units back if `refund`,
    append the outcome record; returns its seq. `refund_if_held`: a refund asked of an intent
    already claimed records `refunded: false` (what happened) instead of raising."""
    # One statement claims the intent (a second outcome for `seq` finds nothing).
    rows = c.execute(
        "DELETE FROM audit_intents WHERE seq=?"
        " RETURNING op_id, app_id, install_id, action, keys, seat", (seq,)).fetchall()
    row = rows[0] if rows else None  # fetchall: finish the statement before COMMIT
    app_id = install_id = action = None
    refunded = False
    if row is not None:
        if row[0] != op_id:
            raise LedgerError(f"decision {seq} belongs to another operation")
        app_id, install_id, action = row[1], row[2], row[3]
        if refund:
            keys = tuple(str(k) for k in json.loads(row[4]))
            held = Reservation(op_id, keys, bool(row[5]))
            if reconciled:  # the host's own recovery (`settle`): no refusal of the app's
                refund_in(c, held)
                refunded = True
            else:
                refunded = refund_within(c, held, install_id, now)
    elif refund and not refund_if_held:
        raise LedgerError(f"decision {seq} has no pending reservation to refund")
    # app/install/action come from the stored intent, validated with the decision.
    body = _outcome_body(seq, op_id, ok, error_code, refunded, reconciled, status,
                         route, (app_id, install_id, action))
    return append_in(c, record_json(body), now)


def _outcome_body(seq: int, op_id: str, ok: bool, error_code: str | None, refunded: bool,
                  reconciled: bool, status: int | None, route: str | None,
                  who: tuple[object, ...]) -> dict[str, object]:
    """An outcome record's body, built directly (hot path): `who` is the decision's (app_id,
    install_id, action), validated with it; the codes and the route are capped here."""
    body: dict[str, object] = {
        "kind": "outcome", "ref_seq": seq, "op_id": check_field("op_id", op_id),
        "ok": bool(ok),
        "code": check_field("code", error_code) if error_code else ("ok" if ok else "error"),
        "refunded": refunded,
    }
    if reconciled:
        body["reconciled"] = True
    if status is not None:
        body["status"] = int(status)
    if route is not None:
        body["route"] = check_field("route", route)
    for name, v in zip(("app_id", "install_id", "action"), who, strict=True):
        if v is not None:
            body[name] = v
    return body


def _seats_used(conn: Conn, counter: SeatCounter) -> int:
    """The seats in use, with the pending creations read inside the caller's transaction."""
    pending = [str(r[0]) for r in conn.execute("SELECT op_id FROM audit_intents WHERE seat = 1")]
    used = counter(pending)
    if isinstance(used, bool) or not isinstance(used, int) or used < 0:
        raise ValueError(f"seat counter returned {used!r}")
    return used


def _check_holds(c: Conn, holds: Holds | None) -> None:
    if holds is not None and not holds(c):
        raise Stale("the decision's inputs changed before its admission")


def _verdict_in(c: Conn, body: dict[str, object], charges: Sequence[QuotaCharge], op_id: str,
                now: float, seats: tuple[int, int] | None, refusal_budget: QuotaCharge | None,
                ) -> tuple[int, Reservation | QuotaDenied, tuple[QuotaState, ...], bool]:
    """Inside the caller's transaction: reserve `charges` (and a seat) and append the decision
    `body` with the verdict laid over it (a dict update rather than dataclasses.replace: this
    is the hot path). Returns (seq, reservation or denial, quota states, over_budget)."""
    result, states = reserve_in(c, charges, op_id, now, seats)
    body["kind"] = "decision"
    qj = quota_json(states)
    if qj:
        body["quota"] = qj
    if isinstance(result, QuotaDenied):
        body.update(allowed=False, code="quota_exceeded", message=cap_text(result.message))
        seq, over = _refusal_in(c, body, now, refusal_budget)
        return seq, result, states, over
    body["allowed"] = True
    body.setdefault("code", "allow")
    return append_in(c, record_json(body), now), result, states, False


# The summary of an install's refusals past its budget: at most one per window (its own ring).
_SUMMARY_SUFFIX = ":summary"


def _refusal_in(conn: Conn, body: dict[str, object], now: float,
                budget: QuotaCharge | None) -> tuple[int, bool]:
    """Append the refusal `body` if the budget allows; else one summary per window, else nothing.
    Runs inside the caller's transaction. Returns (seq or -1, over_budget)."""
    if budget is None:
        return append_in(conn, record_json(body), now), False
    taken, _ = reserve_in(conn, [budget], "refusal", now)
    if isinstance(taken, Reservation):
        return append_in(conn, record_json(body), now), False
    summary = Charge(budget.key + _SUMMARY_SUFFIX, 1, budget.window_s, budget.scope)
    first, _ = reserve_in(conn, [summary], "summary", now)
    if not isinstance(first, Reservation):
        return -1, True
    record: dict[str, object] = {k: body[k] for k in ("app_id", "install_id", "action")
                                 if k in body}
    record.update(
        kind="decision", allowed=False, code="refusal_budget_exceeded",
        message=cap_text(
            f"more than {budget.limit} refusals in {budget.window_s:g}s: the app's child is "
            "stopped, and further refusals in this window are not recorded one by one "
            f"(the last one: {body.get('code')})"))
    return append_in(conn, record_json(record), now), True
