"""Livechat rooms and their life cycle: start (+ automatic routing), take, transfer, close, and
the serving app's agent display. Each function runs inside the caller's transaction and queues
its events on the `Tx`, in the order they happen:

- start:    room_started(room, visitor), then agent_assigned(room, agent) if someone was routable
- take:     agent_assigned(room, agent)
- transfer: agent_unassigned(room, old agent) if any, agent_assigned(room, new agent),
            room_transferred(room, from, to, department)
- close:    room_closed(room, closed_by)
- dispatch: agent_assigned(room, agent) for each queued room routed once an agent became
            routable (status available, a department joined, reactivated, given the bot role)
Rooms in payloads are the state after the change.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from host.server import events, limits, livechat, routing
from host.server.db import Tx, new_id
from host.server.errors import Conflict, Forbidden, InvalidArgument, NotFound
from host.server.shapes import AgentDisplay, Closer, Room

_ROOM = (
    "SELECT id, visitor_id, department_id, served_by, open, custom_fields, agent_display,"
    " created_by_app, created_at, closed_at, closed_by_type, closed_by_id, close_comment,"
    " closed_by_app FROM rooms "
)


def _room(row: sqlite3.Row) -> Room:
    closed_by: Closer | None = None
    if row[10] is not None:
        closed_by = Closer(type=row[10], id=row[11], app_id=row[13])
    display: AgentDisplay | None = json.loads(row[6]) if row[6] else None
    return Room(
        id=row[0], visitor_id=row[1], department_id=row[2], served_by=row[3],
        open=bool(row[4]), custom_fields=json.loads(row[5]), agent_display=display,
        created_by_app=row[7], created_at=row[8], closed_at=row[9], closed_by=closed_by,
        close_comment=row[12],
    )


def get(conn: sqlite3.Connection, room_id: str) -> Room:
    """A room by id, or NotFound."""
    row = conn.execute(_ROOM + "WHERE id = ?", (limits.ident(room_id, "room_id"),)).fetchone()
    if row is None:
        raise NotFound(f"no livechat room with id {room_id!r}")
    return _room(row)


def get_open(conn: sqlite3.Connection, room_id: str) -> Room:
    """An open room, NotFound if unknown, Conflict if closed."""
    room = get(conn, room_id)
    if not room["open"]:
        raise Conflict(f"livechat room {room_id!r} is closed")
    return room


def list_rooms(conn: sqlite3.Connection, open: bool | None) -> list[Room]:
    """Rooms, newest first (at most MAX_LIST); `open` filters on state when given."""
    if open is None:
        rows = conn.execute(
            _ROOM + "ORDER BY created_at DESC, id LIMIT ?", (limits.MAX_LIST,)
        ).fetchall()
    else:
        rows = conn.execute(
            _ROOM + "WHERE open = ? ORDER BY created_at DESC, id LIMIT ?",
            (int(open), limits.MAX_LIST),
        ).fetchall()
    return [_room(r) for r in rows]


def open_room_of(conn: sqlite3.Connection, visitor_id: str) -> Room | None:
    """The visitor's open room (at most one: `start` refuses a second), or None."""
    row = conn.execute(
        _ROOM + "WHERE visitor_id = ? AND open = 1 ORDER BY created_at DESC, id LIMIT 1",
        (limits.ident(visitor_id, "visitor_id"),),
    ).fetchone()
    return None if row is None else _room(row)


# A room of `user_id`'s departments' queue, or of no department (everyone's queue), as
# `rest_access.can_access` admits it.
_IN_DEPARTMENTS_OF = (
    "(department_id IS NULL OR department_id IN"
    " (SELECT department_id FROM department_agents WHERE user_id = ?))"
)


def queue(
    conn: sqlite3.Connection, departments_of: str | None, department: str | None = None
) -> list[Room]:
    """Open rooms nobody serves, oldest (longest waiting) first, at most MAX_LIST: all of them
    (`departments_of` None), or those `departments_of`'s departments (or none) may take;
    `department` narrows to one department id. Filtered here, before the cap: a filter applied
    to a capped list loses the longest-waiting visitors once enough newer rooms are open."""
    sql = _ROOM + "WHERE open = 1 AND served_by IS NULL"
    params: list[object] = []
    if departments_of is not None:
        sql += " AND " + _IN_DEPARTMENTS_OF
        params.append(limits.ident(departments_of, "user_id"))
    if department is not None:
        sql += " AND department_id = ?"
        params.append(department)
    rows = conn.execute(sql + " ORDER BY created_at, id LIMIT ?",
                        (*params, limits.MAX_LIST)).fetchall()
    return [_room(r) for r in rows]


def seen_by(conn: sqlite3.Connection, agent_id: str, open: bool | None) -> list[Room]:
    """The rooms an agent who is no manager may see (`rest_access.can_access`): those it
    serves and its departments' queue, newest first, at most MAX_LIST; `open` filters on
    state. The parts are disjoint (served by it, open or closed; served by nobody), each read
    by an index in the list's order (rooms_served_open, rooms_open_created) and merged."""
    agent_id = limits.ident(agent_id, "user_id")
    parts: list[str] = []
    params: list[object] = []
    for state in (1, 0) if open is None else (int(open),):
        parts.append(_ROOM + "WHERE served_by = ? AND open = ?")
        params += [agent_id, state]
    if open is not False:
        parts.append(_ROOM + "WHERE open = 1 AND served_by IS NULL AND " + _IN_DEPARTMENTS_OF)
        params.append(agent_id)
    sql = " UNION ALL ".join(parts)
    rows = conn.execute(sql + " ORDER BY created_at DESC, id LIMIT ?",
                        (*params, limits.MAX_LIST)).fetchall()
    return [_room(r) for r in rows]


def visitor_room_seen_by(
    conn: sqlite3.Connection, agent_id: str, visitor_id: str
) -> Room | None:
    """A room of the visitor's that `seen_by` would show the agent, or None: its open room
    when the agent serves it or may take it (one row, by rooms_visitor_open), else a closed
    one the agent served."""
    visitor_id = limits.ident(visitor_id, "visitor_id")
    agent_id = limits.ident(agent_id, "user_id")
    row = conn.execute(
        _ROOM + "WHERE visitor_id = ? AND open = 1 AND (served_by = ? OR (served_by IS NULL"
        " AND " + _IN_DEPARTMENTS_OF + ")) LIMIT 1", (visitor_id, agent_id, agent_id),
    ).fetchone()
    if row is None:
        row = conn.execute(
            _ROOM + "WHERE visitor_id = ? AND open = 0 AND served_by = ? LIMIT 1",
            (visitor_id, agent_id),
        ).fetchone()
    return None if row is None else _room(row)


def _set_served(tx: Tx, room_id: str, agent_id: str | None) -> Room:
    # A new serving agent drops the old agent display: it belonged to the previous serving app.
    tx.conn.execute(
        "UPDATE rooms SET served_by = ?, agent_display = NULL WHERE id = ?", (agent_id, room_id)
    )
    return get(tx.conn, room_id)


def start(
    tx: Tx, visitor_id: str, department: str | None, created_by_app: str | None,
    custom_fields: dict[str, str] | None = None,
) -> Room:
    """Open a room for a visitor and route it. Conflict if the visitor already has an open room."""
    visitor = livechat.get_visitor(tx.conn, visitor_id)
    dep_id = livechat.get_department(tx.conn, department)["id"] if department is not None else None
    existing = tx.conn.execute(
        "SELECT id FROM rooms WHERE visitor_id = ? AND open = 1", (visitor_id,)
    ).fetchone()
    if existing is not None:
        raise Conflict(f"visitor {visitor_id!r} already has an open room {existing[0]!r}")
    rid = new_id()
    tx.conn.execute(
        "INSERT INTO rooms (id, visitor_id, department_id, open, custom_fields, created_by_app,"
        " created_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
        (rid, visitor_id, dep_id, json.dumps(custom_fields or {}, sort_keys=True),
         created_by_app, tx.now),
    )
    room = get(tx.conn, rid)
    tx.emit(events.ROOM_STARTED, {"room": room, "visitor": visitor})
    agent_id = routing.select_agent(tx.conn, dep_id)
    if agent_id is not None:
        room = _set_served(tx, rid, agent_id)
        agent = livechat.get_agent(tx.conn, agent_id)
        tx.emit(events.AGENT_ASSIGNED, {"room": room, "agent": agent})
    return room


# How many queued rooms one change may route: it bounds the transaction that made an agent
# routable (and the events it queues). Rooms beyond it wait for the next change or a take, as
# Rocket.Chat's queue worker routes its queue a batch at a time.
MAX_DISPATCH = 500


def dispatch_queue(tx: Tx, user_id: str) -> list[Room]:
    """Route the queued rooms `user_id` could serve, oldest first, now that it may have become
    routable; each goes to the agent automatic selection picks (the least busy, which may be
    another agent). Nothing happens unless `user_id` is routable. Returns the rooms routed."""
    if not routing.is_routable(tx.conn, user_id):
        return []
    queued = tx.conn.execute(
        "SELECT id, department_id FROM rooms WHERE open = 1 AND served_by IS NULL AND"
        " (department_id IS NULL OR department_id IN"
        "  (SELECT department_id FROM department_agents WHERE user_id = ?))"
        " ORDER BY created_at, id LIMIT ?", (user_id, MAX_DISPATCH),
    ).fetchall()
    routed: list[Room] = []
    for rid, dep_id in queued:
        agent_id = routing.select_agent(tx.conn, dep_id)
        if agent_id is None:  # not expected: user_id itself is routable for this room
            continue
        room = _set_served(tx, rid, agent_id)
        agent = livechat.get_agent(tx.conn, agent_id)
        tx.emit(events.AGENT_ASSIGNED, {"room": room, "agent": agent})
        routed.append(room)
    return routed


def take(tx: Tx, room_id: str, agent_id: str) -> Room:
    """An agent takes a queued room (manual routing). Conflict if someone already serves it or
    the agent is deactivated. A not-available agent may take a room (that is what manual
    routing is for); a deactivated one can speak in none (its tokens are gone), so the room
    would wait on nobody, unrouted. An agent outside the room's department may take it, as in
    Rocket.Chat: an external router's choice (examples/apps/agent-sync) is such a take."""
    room = get_open(tx.conn, room_id)
    agent = livechat.get_agent(tx.conn, agent_id)
    if room["served_by"] == agent_id:
        raise Conflict(f"agent {agent_id!r} already serves room {room_id!r}")
    if room["served_by"] is not None:
        raise Conflict(f"room {room_id!r} is served by another agent; transfer it instead")
    active = tx.conn.execute("SELECT active FROM users WHERE id = ?", (agent_id,)).fetchone()
    if not active or not active[0]:
        raise Conflict(f"agent {agent_id!r} is deactivated")
    room = _set_served(tx, room_id, agent_id)
    tx.emit(events.AGENT_ASSIGNED, {"room": room, "agent": agent})
    return room


def transfer(tx: Tx, room_id: str, department: str | None, agent_id: str | None) -> Room:
    """Move a room to an agent, or to a department (routing picks the agent there, never the
    current one). Conflict if the target cannot take it; nothing changes then."""
    if department is None and agent_id is None:
        raise InvalidArgument("transfer needs a department or an agent_id")
    room = get_open(tx.conn, room_id)
    old_id = room["served_by"]
    dep = livechat.get_department(tx.conn, department) if department is not None else None
    if agent_id is not None:
        livechat.get_agent(tx.conn, agent_id)
        if agent_id == old_id:
            raise Conflict(f"agent {agent_id!r} already serves room {room_id!r}")
        if not routing.is_routable(tx.conn, agent_id):
            raise Conflict(f"agent {agent_id!r} is not available")
        if dep is not None and agent_id not in dep["agents"]:
            raise Conflict(f"agent {agent_id!r} is not in department {dep['name']!r}")
        new_id_ = agent_id
    else:
        assert dep is not None
        picked = routing.select_agent(tx.conn, dep["id"], exclude=old_id)
        if picked is None:
            raise Conflict(f"no agent available in department {dep['name']!r}")
        new_id_ = picked
    old_agent = _agent_or_none(tx.conn, old_id)
    if dep is not None:
        tx.conn.execute("UPDATE rooms SET department_id = ? WHERE id = ?", (dep["id"], room_id))
    room = _set_served(tx, room_id, new_id_)
    new_agent = livechat.get_agent(tx.conn, new_id_)
    if old_agent is not None:
        tx.emit(events.AGENT_UNASSIGNED, {"room": room, "agent": old_agent})
    tx.emit(events.AGENT_ASSIGNED, {"room": room, "agent": new_agent})
    tx.emit(
        events.ROOM_TRANSFERRED,
        {"room": room, "from": old_agent, "to": new_agent, "department": dep},
    )
    return room


def _agent_or_none(conn: sqlite3.Connection, user_id: str | None) -> Any:
    if user_id is None:
        return None
    try:
        return livechat.get_agent(conn, user_id)
    except NotFound:
        # The old agent was removed as an agent since: report it as a plain user reference.
        row = conn.execute("SELECT username, name, type FROM users WHERE id = ?", (user_id,))
        u = row.fetchone()
        return {"user_id": user_id, "username": u[0] if u else None,
                "name": u[1] if u else None, "type": u[2] if u else None,
                "status": "not-available", "routable_offline": False, "departments": []}


def close(tx: Tx, room_id: str, closer: Closer, comment: str | None) -> Room:
    """Close an open room (Conflict if already closed), recording who closed it and why."""
    if comment is not None:
        comment = limits.text(comment, "comment", limits.MAX_COMMENT, min_len=0)
    get_open(tx.conn, room_id)
    tx.conn.execute(
        "UPDATE rooms SET open = 0, closed_at = ?, closed_by_type = ?, closed_by_id = ?,"
        " closed_by_app = ?, close_comment = ? WHERE id = ?",
        (tx.now, closer["type"], closer["id"], closer["app_id"], comment, room_id),
    )
    room = get(tx.conn, room_id)
    tx.emit(events.ROOM_CLOSED, {"room": room, "closed_by": closer})
    return room


def set_agent_display(
    tx: Tx, room_id: str, app_user_id: str | None, name: str, avatar_url: str | None
) -> Room:
    """Show the visitor an external agent's name/avatar. Only the app whose app user serves the
    room may do this (Forbidden otherwise): it speaks for that room, nobody else's."""
    name = limits.name(name, "agent display name")
    if avatar_url is not None:
        avatar_url = limits.url(avatar_url, "avatar_url")
    room = get_open(tx.conn, room_id)
    if app_user_id is None or room["served_by"] != app_user_id:
        raise Forbidden(
            f"only the app whose user serves room {room_id!r} may set its agent display"
        )
    display = AgentDisplay(name=name, avatar_url=avatar_url)
    tx.conn.execute(
        "UPDATE rooms SET agent_display = ? WHERE id = ?",
        (json.dumps(display, sort_keys=True), room_id),
    )
    return get(tx.conn, room_id)
