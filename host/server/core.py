"""`ServerCore`: the embedded server's transaction discipline, events and op_id bookkeeping.

Every write is one transaction (`_write`): validate outside it, BEGIN IMMEDIATE, check a prior
application of the op_id, apply, record the op_id, COMMIT, and only then emit the events the
operation queued. A failing operation therefore writes nothing, records nothing, emits nothing.

Events leave in commit order (`CommitOrder`): a write that queued events draws a ticket while it
still holds the write lock, and its events are emitted only after every earlier ticket's. Before,
two writers could swap between COMMIT and emit, and apps saw one room's messages out of order.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from host.clock import Clock
from host.server import limits, ops
from host.server.db import Database, Tx
from host.server.errors import InvalidArgument
from host.server.events import (
    NO_CAUSE,
    Cause,
    Event,
    EventBus,
    PreSendHook,
    Subscriber,
    writing_cause,
)
from host.server.principals import Caller, Principal, app_of
from host.server.stray import refuse_stray

R = TypeVar("R")


class CommitOrder:
    """Hands committed events to the bus in the order their writes committed, in this process.

    `ticket` is drawn under the write lock, before COMMIT, so tickets follow commit order;
    `hand_off` is called once per ticket after COMMIT (with no events if the COMMIT failed). The
    writer that finds the next ticket's events ready emits them, and any later ones ready; a
    writer whose predecessor has not handed off yet leaves its events for that one and returns.
    So no writer ever waits for another (one waiting on an emit could deadlock with a
    subscriber that takes the host's lock around a server write of its own), and the uncontended
    cost is one lock taken three times."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._drawn = 0  # the next ticket to draw
        self._next = 0  # the next ticket to emit
        # Each ticket's events and the cause of the write that raised them (its own, whoever
        # emits them: `host.server.events.Cause`).
        self._ready: dict[int, tuple[list[Event], Cause]] = {}
        self._emitting = False

    def ticket(self) -> int:
        with self._lock:
            self._drawn += 1
            return self._drawn - 1

    def hand_off(self, ticket: int, events: list[Event], cause: Cause = NO_CAUSE) -> None:
        with self._lock:
            self._ready[ticket] = (events, cause)
            if self._emitting:
                return  # the writer emitting now emits these too, in their turn
            self._emitting = True
        try:
            while True:
                with self._lock:
                    ready = self._ready.pop(self._next, None)
                    if ready is None:
                        self._emitting = False
                        return
                    self._next += 1
                self._bus.emit(*ready)  # logs and skips a raising subscriber
        except BaseException:
            with self._lock:
                self._emitting = False
            raise


class ServerCore:
    """Database, clock, event bus and the one-transaction write helper."""

    # Every app write goes through `_write`, which records its op_id in the write's own
    # transaction: `was_applied` is exact (`ServerAdapter.op_log_exact`).
    op_log_exact = True

    def __init__(self, db_path: Path | str, clock: Clock) -> None:
        # A server.db beside a host.db that holds the server's data is not this home's: never
        # opened (nor upgraded), or host.db's accounts and seats would vanish (`stray.py`).
        refuse_stray(db_path)
        self.db = Database(db_path)
        self.clock = clock
        self._bus = EventBus()
        self._order = CommitOrder(self._bus)
        self._pre_send: PreSendHook | None = None

    # -- plumbing -------------------------------------------------------------------------------

    def _write(
        self, p: Principal, op_id: str | None, action: str, args: dict[str, Any],
        fn: Callable[[Tx], R],
    ) -> R:
        app_id = app_of(p)
        if op_id is None:
            if app_id is not None:
                raise InvalidArgument("an app's write needs an op_id")
            dig = ""
        else:
            limits.op_id(op_id)
            dig = ops.digest(action, args)
        loan = self.db.loan()
        ticket: int | None = None  # drawn before COMMIT when this write queued events itself
        try:
            with self.db.write() as conn:
                # Under a loan (`Database.lend`) the op_id is the one the gate drew for this
                # very admission, so no earlier application can hold it; were it not fresh, the
                # ops table's primary key refuses `ops.record` below, the lender's whole
                # transaction rolls back, and the gate's three-commit path (no loan) asks here.
                if op_id is not None and loan is None:
                    prior = ops.prior_result(conn, op_id, action, dig)
                    if prior is not None:
                        return cast(R, prior[0])  # applied before: same answer, no effect
                tx = Tx(conn, self.clock.now())
                result = fn(tx)
                if op_id is not None:
                    ops.record(
                        conn, op_id=op_id, action=action, app_id=app_id,
                        install_id=p.install_id if isinstance(p, Caller) else None,
                        args_digest=dig, result=result, now=tx.now,
                    )
                if loan is None and tx.events:
                    ticket = self._order.ticket()  # still under the write lock: commit order
        except BaseException:
            if ticket is not None:
                self._order.hand_off(ticket, [])  # the COMMIT failed: the next writer's turn
            raise
        if loan is not None:
            loan.events += tx.events  # emitted once the lender's transaction commits
        elif ticket is not None:
            # The cause read here, on the writer's own thread: the events may be emitted by
            # another writer's thread, whose cause is not theirs.
            self._order.hand_off(ticket, tx.events, writing_cause())
        return result

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive `(event_name, payload)` after each commit; returns an unsubscribe function."""
        return self._bus.subscribe(callback)

    def take_turn(self) -> Callable[[list[Event]], None]:
        """A place in commit order for a write that commits in another's transaction (the
        gate's loan, `host.gate.onetx`), taken while that transaction holds the write lock.
        The function returned hands the write's events over once it committed, or none if it
        rolled back: it must be called exactly once, or no later write's events leave."""
        ticket = self._order.ticket()
        cause = writing_cause()  # the lender's thread, making the write: its cause
        return lambda events: self._order.hand_off(ticket, events, cause)

    def emit_committed(self, events: Iterable[Event]) -> None:
        """Hand subscribers events another process committed on this server's data (the REST
        front, `host.server.front`), as if this server had committed them."""
        self._bus.emit(events)

    def set_pre_send_hook(self, hook: PreSendHook | None) -> None:
        """Install (or clear with None) the pre-send hook; see `events.PreSendHook`."""
        self._pre_send = hook

    @property
    def pre_send_hooked(self) -> bool:
        """Whether a pre-send hook judges this server's messages (a message may then wait on
        the apps: the REST API bounds the threads its message routes hold)."""
        return self._pre_send is not None

    def was_applied(self, op_id: str) -> bool:
        """Whether a write with this op_id committed."""
        with self.db.read() as c:
            return ops.was_applied(c, op_id)

    def close(self) -> None:
        """Close this thread's database connection."""
        self.db.close()
