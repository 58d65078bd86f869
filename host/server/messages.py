"""Messages in livechat rooms: who may appear as sender, the insert, and reading a room (or one
message by id)."""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from host.server import limits, livechat
from host.server.db import Tx, new_id
from host.server.errors import Conflict, Forbidden, NotFound
from host.server.shapes import AgentDisplay, Message, Sender


def user_sender(conn: sqlite3.Connection, user_id: str) -> Sender:
    """The sender record of an active user (NotFound / Conflict if unknown / deactivated)."""
    row = conn.execute(
        "SELECT username, name, active FROM users WHERE id = ?", (user_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    if not row[2]:
        raise Conflict(f"user {user_id!r} is deactivated and cannot send messages")
    return Sender(type="user", id=user_id, username=row[0], name=row[1])


def created_user_sender(conn: sqlite3.Connection, app_id: str, user_id: str) -> Sender:
    """The sender record of a user `app_id` created. Forbidden for any other user: an app
    speaks only as its own accounts (the own-users rule), never as a person or another app's."""
    row = conn.execute("SELECT created_by_app FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    if row[0] != app_id:
        raise Forbidden(f"app {app_id!r} did not create user {user_id!r} and cannot send as it")
    return user_sender(conn, user_id)


def visitor_sender(conn: sqlite3.Connection, visitor_id: str) -> Sender:
    """The sender record of a visitor (NotFound if unknown)."""
    v = livechat.get_visitor(conn, visitor_id)
    return Sender(type="visitor", id=v["id"], username=None, name=v["name"])


def draft(
    room_id: str, sender: Sender, app_id: str | None, text: str, now: float,
    display: AgentDisplay | None = None,
) -> Message:
    """A message not yet written (what the pre-send hook sees)."""
    return Message(
        id=new_id(), room_id=room_id, sender=sender, app_id=app_id,
        text=limits.message_text(text), ts=now, display=display,
    )


def insert(tx: Tx, msg: Message) -> None:
    """Write a message (the room was checked open in this transaction by the caller)."""
    d = msg["display"]
    tx.conn.execute(
        "INSERT INTO messages (id, room_id, sender_type, sender_id, app_id, text, ts, alias,"
        " avatar) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (msg["id"], msg["room_id"], msg["sender"]["type"], msg["sender"]["id"], msg["app_id"],
         msg["text"], msg["ts"], d["name"] if d else None, d["avatar_url"] if d else None),
    )


def list_messages(conn: sqlite3.Connection, room_id: str, limit: int) -> list[Message]:
    """The room's latest `limit` messages, oldest first."""
    rows = conn.execute(
        "SELECT * FROM (SELECT id, room_id, sender_type, sender_id, app_id, text, ts, seq,"
        " alias, avatar"
        " FROM messages WHERE room_id = ? ORDER BY seq DESC LIMIT ?) AS newest ORDER BY seq",
        (room_id, limit),
    ).fetchall()
    out: list[Message] = []
    names: dict[tuple[str, str], Sender] = {}
    for r in rows:
        key = (r[2], r[3])
        if key not in names:
            names[key] = _sender(conn, r[2], r[3])
        out.append(_message(r, names[key]))
    return out


def get_message(conn: sqlite3.Connection, message_id: str) -> Message:
    """One message by id (NotFound if the server holds none)."""
    r = conn.execute(
        "SELECT id, room_id, sender_type, sender_id, app_id, text, ts, seq, alias, avatar"
        " FROM messages WHERE id = ?", (message_id,),
    ).fetchone()
    if r is None:
        raise NotFound(f"no message {message_id!r}")
    return _message(r, _sender(conn, r[2], r[3]))


def _message(r: Sequence[Any], sender: Sender) -> Message:
    return Message(
        id=r[0], room_id=r[1], sender=sender, app_id=r[4], text=r[5], ts=r[6],
        display=AgentDisplay(name=r[8], avatar_url=r[9]) if r[8] is not None else None,
    )


def _sender(conn: sqlite3.Connection, kind: str, sid: str) -> Sender:
    if kind == "user":
        row = conn.execute("SELECT username, name FROM users WHERE id = ?", (sid,)).fetchone()
        return Sender(type="user", id=sid, username=row[0] if row else None,
                      name=row[1] if row else None)
    row = conn.execute("SELECT name FROM visitors WHERE id = ?", (sid,)).fetchone()
    return Sender(type="visitor", id=sid, username=None, name=row[0] if row else None)
