"""`ServerCore`: the embedded server's transaction discipline, events and op_id bookkeeping.

Every write is one transaction (`_write`): validate outside it, BEGIN IMMEDIATE, check a prior
application of the op_id, apply, record the op_id, COMMIT, and only then emit the events the
operation queued. A failing operation therefore writes nothing, records nothing, emits nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from host.clock import Clock
from host.server import limits, ops
from host.server.db import Database, Tx
from host.server.errors import InvalidArgument
from host.server.events import Event, EventBus, PreSendHook, Subscriber
from host.server.principals import Caller, Principal, app_of

R = TypeVar("R")


class ServerCore:
    """Database, clock, event bus and the one-transaction write helper."""

    # Every app write goes through `_write`, which records its op_id in the write's own
    # transaction: `was_applied` is exact (`ServerAdapter.op_log_exact`).
    op_log_exact = True

    def __init__(self, db_path: Path | str, clock: Clock) -> None:
        self.db = Database(db_path)
        self.clock = clock
        self._bus = EventBus()
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
        with self.db.write() as conn:
            # Under a loan (`Database.lend`) the op_id is the one the gate drew for this very
            # admission, so no earlier application can hold it; were it not fresh, the ops
            # table's primary key refuses `ops.record` below, the lender's whole transaction
            # rolls back, and the gate's three-commit path (no loan) asks here as always.
            if op_id is not None and self.db.loan() is None:
                prior = ops.prior_result(conn, op_id, action, dig)
                if prior is not None:
                    return cast(R, prior[0])  # applied before: same answer, no second effect
            tx = Tx(conn, self.clock.now())
            result = fn(tx)
            if op_id is not None:
                ops.record(
                    conn, op_id=op_id, action=action, app_id=app_id,
                    install_id=p.install_id if isinstance(p, Caller) else None,
                    args_digest=dig, result=result, now=tx.now,
                )
        loan = self.db.loan()
        if loan is not None:
            loan.events += tx.events  # emitted once the lender's transaction commits
        else:
            self._bus.emit(tx.events)
        return result

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive `(event_name, payload)` after each commit; returns an unsubscribe function."""
        return self._bus.subscribe(callback)

    def emit_committed(self, events: Iterable[Event]) -> None:
        """Hand subscribers events another process committed on this server's data (the REST
        front, `host.server.front`), as if this server had committed them."""
        self._bus.emit(events)

    def set_pre_send_hook(self, hook: PreSendHook | None) -> None:
        """Install (or clear with None) the pre-send hook; see `events.PreSendHook`."""
        self._pre_send = hook

    def was_applied(self, op_id: str) -> bool:
        """Whether a write with this op_id committed."""
        with self.db.read() as c:
            return ops.was_applied(c, op_id)

    def close(self) -> None:
        """Close this thread's database connection."""
        self.db.close()
