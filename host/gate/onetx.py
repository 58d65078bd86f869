"""The embedded server's writes inside the gate's own transaction (DESIGN rule 9's second branch).

When the embedded server keeps its tables in the ledger's SQLite file (a home's `host.db`,
`Home.server_store`), a call with effects on users, roles, agents or rooms commits its decision,
quota units, seat check, the server's write with its op record, and its outcome in one
transaction (`Ledger.admit_apply`): a crash leaves all of it or none, so no intent is kept and
nothing is settled at the next start. The server's own connection is not used: the gate lends it
the ledger's, inside that transaction (`Database.lend`), and the events the write queued are
emitted only once it has committed (`AfterCommit`).

Anywhere else (the server's data in its own `server.db`, in PostgreSQL, or a Rocket.Chat
workspace) the three commits stay: admission, the server's write, the outcome.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from host.server.adapter import ACTION_METHODS
from host.server.db import Database
from host.server.principals import Caller
from host.store import Conn
from host.store.sqlite import SqliteStore

# The server's writes that may run inside the ledger's transaction: SQL on users, roles, agents
# and rooms only. Never messages (`messages.send`, `send_as_user`, `livechat.relay_message`):
# sending one first runs the other apps' pre-send hooks, whose own bridge calls need the
# ledger's write lock that this transaction holds. A new write action is one or the other by
# decision: `tests/security/test_one_transaction_writes.py` names the messages as the only rest.
LENT_ACTIONS = frozenset({
    "users.create", "users.set_custom_fields", "users.deactivate", "roles.assign",
    "roles.remove", "livechat.add_agent", "livechat.remove_agent", "livechat.set_agent_status",
    "livechat.add_department_agent", "livechat.remove_department_agent",
    "livechat.create_room", "livechat.take_room", "livechat.transfer_room",
    "livechat.close_room", "livechat.set_agent_display",
})


@dataclass(frozen=True)
class AfterCommit:
    """A one-transaction call's value, and what may run only once that transaction committed
    (the server's events: an app must never hear of a write that was rolled back)."""

    value: Any
    then: Callable[[], None]
    # What runs instead of `then` when that transaction rolled back (its place in the
    # server's commit order given up: `EmbeddedServer.take_turn`).
    abandon: Callable[[], None] = lambda: None


class Calling(Protocol):
    """What a write needs of the gate's session: the app it calls as."""

    @property
    def caller(self) -> Caller: ...


@dataclass(frozen=True)
class ServerCalls:
    """The embedded server sharing the ledger's file: its writes on the ledger's connection."""

    server: Any  # the adapter the gate calls (the embedded server, or a wrapper of it)
    db: Database  # the embedded server's database, which the adapter's methods write through

    def call(self, action: str, op_id: str, c: Conn, session: Calling,
             args: dict[str, Any]) -> AfterCommit:
        """The gate's dispatch of a write in `LENT_ACTIONS`, on `c` (inside the admission);
        `action` and `op_id` first, so the gate binds them and calls it as a store call."""
        method = getattr(self.server, ACTION_METHODS[action])
        with self.db.lend(cast(sqlite3.Connection, c)) as loan:
            value = method(session.caller, **args, op_id=op_id)
        events = loan.events
        if not events:
            return AfterCommit(value, lambda: None)
        # Its place in the server's commit order, taken under the write lock the admission
        # holds: its events leave after those of every write that committed before it and
        # before any after it (else a room's close could reach apps before a message sent
        # in it just before). The gate hands them over after the commit, or gives the place
        # up if the admission rolls back.
        turn = self.server.take_turn()
        return AfterCommit(value, lambda: turn(events), lambda: turn([]))

    def seats_in(self, c: Conn, pending_op_ids: Sequence[str]) -> int:
        """Seats in use, counted on `c` inside the admission that may take one."""
        with self.db.lend(cast(sqlite3.Connection, c)):
            return int(self.server.seats_in_use(pending_op_ids))


def server_calls(server: object, store: object) -> ServerCalls | None:
    """`ServerCalls` when `server` is the embedded server (its `db` a `Database`) keeping its
    data in the same SQLite file as the ledger's `store`; else None (the three-commit path)."""
    db = getattr(server, "db", None)
    if not isinstance(db, Database) or db.shared is not None:
        return None
    if not isinstance(store, SqliteStore):
        return None
    try:
        same = os.path.samefile(db.path, store.path)
    except OSError:
        return None
    return ServerCalls(server, db) if same else None
