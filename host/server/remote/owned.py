"""What Stockade keeps about a remote workspace in its own store (`host.db`), because Rocket.Chat
does not keep it: which app created which user (ownership, seats), which app user is whose,
the remote writes in flight (rule 9 across the network), which messages an app sent, the
webhook inbox and the events already delivered.

Tables (component `rocketchat`):

- `rc_users`: users an app created (`created_by_app`) and each app's own user (`app_id`), with
  the active flag as Stockade last set or saw it. Seats are counted here, never on the server.
- `rc_ops`: one row per remote write, `pending` before the HTTP request leaves (with what
  `probe` needs to read the outcome back), `applied` or `failed` after. A host killed in
  between leaves `pending`; `RemoteServer.was_applied` settles it by reading the workspace.
- `rc_messages`: message id → sending app (a webhook echo of an app's own message carries it).
- `rc_inbox`: webhooks accepted (answered 200) and not yet turned into events.
- `rc_delivered`: each Stockade event delivered, by key: a replayed or retried webhook never
  reaches an app twice. Rows older than `DELIVERED_KEEP_S` are dropped.
- `rc_meta`: when the last webhook was taken (the catch-up's horizon).
- `rc_rooms`: each room's last known serving agent (what a webhook leaves out: who was
  unassigned when a room was forwarded or queued again), and the external agent an app
  displays there (Rocket.Chat has no such field: the visitor sees it on each relayed message's
  `alias` / `avatar`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from host.server.errors import Unavailable
from host.server.limits import MAX_ID
from host.store import StoreTarget, ensure_schema, open_store

SCHEMA_COMPONENT = "rocketchat"
SCHEMA_VERSION = 1
# How long a delivered event's key is remembered. Rocket.Chat retries a webhook for ~100 s
# (ten times, ten seconds apart); a week covers any replay an attacker could hold back and stay
# inside the webhook's own retention, at a few bytes per event.
DELIVERED_KEEP_S = 7 * 24 * 3600.0
# Message ids remembered for their app (echoes arrive within seconds).
MESSAGES_KEEP_S = 24 * 3600.0

DDL = (
    "CREATE TABLE IF NOT EXISTS rc_users(user_id TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " created_by_app TEXT, app_id TEXT UNIQUE, active INTEGER NOT NULL, created_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rc_users_by_app ON rc_users(created_by_app, active)",
    "CREATE TABLE IF NOT EXISTS rc_ops(op_id TEXT PRIMARY KEY, action TEXT NOT NULL,"
    " probe TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rc_messages(msg_id TEXT PRIMARY KEY, app_id TEXT NOT NULL,"
    " at REAL NOT NULL, alias TEXT, avatar TEXT)",
    "CREATE TABLE IF NOT EXISTS rc_inbox(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " body TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rc_delivered(key TEXT PRIMARY KEY, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rc_meta(key TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rc_rooms(room_id TEXT PRIMARY KEY, served_by TEXT,"
    " open INTEGER NOT NULL, display_name TEXT, display_avatar TEXT)",
)


class Owned:
    """The host-side record of a remote workspace (see the module docstring)."""

    def __init__(self, db_path: StoreTarget) -> None:
        self.store = open_store(db_path)
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)

    def close(self) -> None:
        self.store.close()

    # -- users ------------------------------------------------------------------------------
    def record_user(self, user_id: str, username: str, *, created_by_app: str | None,
                    app_id: str | None, now: float, active: bool = True) -> None:
        _kept_id(user_id, "user")
        with self.store.transaction() as c:
            c.execute("INSERT INTO rc_users(user_id, username, created_by_app, app_id, active,"
                      " created_at) VALUES(?,?,?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET"
                      " active=excluded.active, created_by_app=COALESCE(rc_users.created_by_app,"
                      " excluded.created_by_app), app_id=COALESCE(rc_users.app_id,"
                      " excluded.app_id)",
                      (user_id, username, created_by_app, app_id, int(active), now))

    def set_active(self, user_id: str, active: bool) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE rc_users SET active=? WHERE user_id=?", (int(active), user_id))

    def created_by(self, user_id: str) -> str | None:
        row = self.store.conn().execute(
            "SELECT created_by_app FROM rc_users WHERE user_id=?", (user_id,)).fetchone()
        return None if row is None else row[0]

    def app_user(self, app_id: str) -> tuple[str, str] | None:
        """(user id, username) of an app's own user, if Stockade made one."""
        row = self.store.conn().execute(
            "SELECT user_id, username FROM rc_users WHERE app_id=?", (app_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def app_of_user(self, user_id: str) -> str | None:
        row = self.store.conn().execute(
            "SELECT app_id FROM rc_users WHERE user_id=?", (user_id,)).fetchone()
        return None if row is None else row[0]

    def users_created_by(self, app_id: str, *, active_only: bool = False) -> list[str]:
        sql = "SELECT user_id FROM rc_users WHERE created_by_app=?"
        if active_only:
            sql += " AND active=1"
        return [r[0] for r in self.store.conn().execute(sql + " ORDER BY user_id", (app_id,))]

    def count_active_created(self) -> int:
        row = self.store.conn().execute(
            "SELECT COUNT(*) FROM rc_users WHERE created_by_app IS NOT NULL AND active=1"
        ).fetchone()
        return int(row[0])

    def created_after(self, cursor: str, limit: int) -> list[tuple[str, bool]]:
        """App-created users (id, active as recorded) after `cursor` in id order: the seat
        read-back walks them a batch at a time."""
        return [(str(r[0]), bool(r[1])) for r in self.store.conn().execute(
            "SELECT user_id, active FROM rc_users WHERE created_by_app IS NOT NULL"
            " AND user_id > ? ORDER BY user_id LIMIT ?", (cursor, limit))]

    def seats_in_use(self, pending_op_ids: Sequence[str]) -> int:
        """Active app-created users plus admitted creations not yet known applied."""
        c = self.store.conn()
        applied = 0
        for op_id in pending_op_ids:
            row = c.execute("SELECT state FROM rc_ops WHERE op_id=?", (op_id,)).fetchone()
            applied += int(row is not None and row[0] == "applied")
        return self.count_active_created() + len(pending_op_ids) - applied

    # -- remote writes in flight ---------------------------------------------------------------
    def begin_op(self, op_id: str, action: str, probe: dict[str, Any], now: float) -> None:
        """Durable before the request leaves: a crash after this is settled by `probe`."""
        with self.store.transaction() as c:
            c.execute("INSERT OR IGNORE INTO rc_ops(op_id, action, probe, state, at)"
                      " VALUES(?,?,?,?,?)", (op_id, action, json.dumps(probe), "pending", now))

    def end_op(self, op_id: str, state: str) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE rc_ops SET state=? WHERE op_id=?", (state, op_id))

    def op(self, op_id: str) -> tuple[str, str, dict[str, Any]] | None:
        """(action, state, probe) of a remote write, or None if it never left."""
        row = self.store.conn().execute(
            "SELECT action, state, probe FROM rc_ops WHERE op_id=?", (op_id,)).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    # -- messages an app sent ------------------------------------------------------------------
    def record_message(self, msg_id: str, app_id: str, now: float,
                       alias: str | None = None, avatar: str | None = None) -> None:
        _kept_id(msg_id, "message")
        with self.store.transaction() as c:
            c.execute("INSERT OR IGNORE INTO rc_messages(msg_id, app_id, at, alias, avatar)"
                      " VALUES(?,?,?,?,?)", (msg_id, app_id, now, alias, avatar))
            c.execute("DELETE FROM rc_messages WHERE at < ?", (now - MESSAGES_KEEP_S,))

    def message_app(self, msg_id: str) -> tuple[str, str | None, str | None] | None:
        """(sending app, alias, avatar) of a message an app sent through Stockade."""
        row = self.store.conn().execute(
            "SELECT app_id, alias, avatar FROM rc_messages WHERE msg_id=?", (msg_id,)).fetchone()
        return None if row is None else (str(row[0]), row[1], row[2])

    # -- webhook inbox and delivered events ----------------------------------------------------
    def inbox_take(self, key: str, body: str, now: float) -> int | None:
        """Store a body once per `key`, the claim and the entry in one transaction: None for a
        repeat. (Claimed first and stored after, a store that failed left the claim, and the
        workspace's retry of the body was answered as a duplicate: the webhook was lost.)"""
        with self.store.transaction() as c:
            if not self._claim(c, key, now):
                return None
            return self._put(c, body, now)

    @staticmethod
    def _put(c: Any, body: str, now: float) -> int:
        c.execute("INSERT INTO rc_meta(key, value) VALUES('last_webhook', ?) ON CONFLICT(key)"
                  " DO UPDATE SET value=excluded.value", (now,))
        row = c.execute("INSERT INTO rc_inbox(body, at) VALUES(?, ?) RETURNING seq",
                        (body, now)).fetchall()[0]  # fetchall: finish before COMMIT
        return int(row[0])

    def inbox_next(self) -> tuple[int, str] | None:
        row = self.store.conn().execute(
            "SELECT seq, body FROM rc_inbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def inbox_done(self, seq: int) -> None:
        with self.store.transaction() as c:
            c.execute("DELETE FROM rc_inbox WHERE seq=?", (seq,))

    def inbox_size(self) -> int:
        return int(self.store.conn().execute("SELECT COUNT(*) FROM rc_inbox").fetchone()[0])

    def claim_event(self, key: str, now: float) -> bool:
        """True once per key (then the event may be delivered); False for a repeat."""
        with self.store.transaction() as c:
            return self._claim(c, key, now)

    @staticmethod
    def _claim(c: Any, key: str, now: float) -> bool:
        if not c.execute("INSERT INTO rc_delivered(key, at) VALUES(?, ?) ON CONFLICT(key)"
                         " DO NOTHING RETURNING key", (key, now)).fetchall():
            return False  # delivered already
        c.execute("DELETE FROM rc_delivered WHERE at < ?", (now - DELIVERED_KEEP_S,))
        return True

    def delivered(self, key: str) -> bool:
        """Whether an event was claimed under `key` (a claim is kept DELIVERED_KEEP_S)."""
        return self.store.conn().execute(
            "SELECT 1 FROM rc_delivered WHERE key=?", (key,)).fetchone() is not None

    def room_state(self, room_id: str) -> tuple[str | None, bool] | None:
        row = self.store.conn().execute(
            "SELECT served_by, open FROM rc_rooms WHERE room_id=?", (room_id,)).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def set_room_state(self, room_id: str, served_by: str | None, open_: bool) -> None:
        with self.store.transaction() as c:
            c.execute("INSERT INTO rc_rooms(room_id, served_by, open) VALUES(?,?,?)"
                      " ON CONFLICT(room_id) DO UPDATE SET served_by=excluded.served_by,"
                      " open=excluded.open", (room_id, served_by, int(open_)))

    def set_display(self, room_id: str, name: str, avatar_url: str | None) -> None:
        with self.store.transaction() as c:
            c.execute("INSERT INTO rc_rooms(room_id, served_by, open, display_name,"
                      " display_avatar) VALUES(?, NULL, 1, ?, ?) ON CONFLICT(room_id) DO UPDATE"
                      " SET display_name=excluded.display_name,"
                      " display_avatar=excluded.display_avatar", (room_id, name, avatar_url))

    def display(self, room_id: str) -> tuple[str, str | None] | None:
        row = self.store.conn().execute(
            "SELECT display_name, display_avatar FROM rc_rooms WHERE room_id=?",
            (room_id,)).fetchone()
        return None if row is None or row[0] is None else (str(row[0]), row[1])

    def last_webhook(self) -> float | None:
        """When the last webhook was taken (None: this home never received one)."""
        row = self.store.conn().execute(
            "SELECT value FROM rc_meta WHERE key='last_webhook'").fetchone()
        return None if row is None else float(row[0])

    def open_rooms(self) -> list[str]:
        """Rooms Stockade last saw open."""
        return [r[0] for r in self.store.conn().execute(
            "SELECT room_id FROM rc_rooms WHERE open=1 ORDER BY room_id")]


def _kept_id(value: str, what: str) -> None:
    """An id the workspace chose, before it is kept in host.db: at most `MAX_ID` characters (a
    Rocket.Chat id has 17 to 24). Guards the host's disk: a workspace answering each message an
    app sends with a megabyte-long id grew host.db by a megabyte a message, kept a day. Over the
    cap the write's outcome is unknown (the workspace did answer): the op stays pending and its
    units reserved, the safe side of a quota, never recorded and never refunded."""
    if len(value) > MAX_ID:
        raise Unavailable(f"the workspace answered a {what} id of {len(value)} characters "
                          f"(ids are at most {MAX_ID}); it may have been applied: the host checks",
                          outcome_unknown=True)
