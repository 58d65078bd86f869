"""Livechat records: agents, departments and visitors (rooms are in `rooms.py`).

Functions run inside the caller's transaction and return plain shape dicts.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from host.server import limits, users
from host.server.db import new_id
from host.server.errors import Conflict, InvalidArgument, NotFound
from host.server.shapes import Agent, Department, Visitor
from host.store import INTEGRITY_ERRORS

# The role that makes an agent routable while not-available (bots answer around the clock).
ROUTABLE_OFFLINE_ROLE = "bot"
AGENT_ROLE = "livechat-agent"


# -- agents ---------------------------------------------------------------------------------

def get_agent(conn: sqlite3.Connection, user_id: str) -> Agent:
    """The agent record of `user_id`, or NotFound (unknown user, or a user who is no agent)."""
    row = conn.execute(
        "SELECT a.user_id, u.username, u.name, u.type, a.status FROM agents a "
        "JOIN users u ON u.id = a.user_id WHERE a.user_id = ?",
        (limits.ident(user_id, "user_id"),),
    ).fetchone()
    if row is None:
        if users.exists(conn, user_id):
            raise NotFound(f"user {user_id!r} is not a livechat agent")
        raise NotFound(f"no user with id {user_id!r}")
    offline = conn.execute(
        "SELECT 1 FROM user_roles WHERE user_id = ? AND role = ?",
        (user_id, ROUTABLE_OFFLINE_ROLE),
    ).fetchone() is not None
    deps = [r[0] for r in conn.execute(
        "SELECT department_id FROM department_agents WHERE user_id = ? ORDER BY department_id",
        (user_id,),
    )]
    return Agent(
        user_id=row[0], username=row[1], name=row[2], type=row[3], status=row[4],
        routable_offline=offline, departments=deps,
    )


def list_agents(conn: sqlite3.Connection) -> list[Agent]:
    """Every agent, by username."""
    ids = [r[0] for r in conn.execute(
        "SELECT a.user_id FROM agents a JOIN users u ON u.id = a.user_id "
        "ORDER BY u.username_cf LIMIT ?", (limits.MAX_LIST,))]
    return [get_agent(conn, i) for i in ids]


def add_agent(conn: sqlite3.Connection, now: float, user_id: str) -> Agent:
    """Make a user an agent (status not-available until set), with the livechat-agent role.
    Idempotent. The user must be active."""
    user = users.get(conn, user_id)
    if not user["active"]:
        raise Conflict(f"user {user_id!r} is deactivated")
    conn.execute(
        "INSERT INTO agents (user_id, status, added_at) VALUES (?, 'not-available', ?) "
        "ON CONFLICT DO NOTHING",
        (user_id, now),
    )
    conn.execute(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (user_id, AGENT_ROLE),
    )
    return get_agent(conn, user_id)


def remove_agent(conn: sqlite3.Connection, user_id: str) -> Agent:
    """Stop a user being an agent (and drop the livechat-agent role). Rooms it serves keep it
    as `served_by` (history); transfer them to reassign. Returns the removed agent record."""
    agent = get_agent(conn, user_id)
    conn.execute("DELETE FROM agents WHERE user_id = ?", (user_id,))
    conn.execute(
        "DELETE FROM user_roles WHERE user_id = ? AND role = ?", (user_id, AGENT_ROLE)
    )
    return agent


def set_agent_status(conn: sqlite3.Connection, user_id: str, status: str) -> Agent:
    """Set an agent's status: `available` or `not-available`."""
    if status not in limits.AGENT_STATUSES:
        raise InvalidArgument("status must be 'available' or 'not-available'")
    get_agent(conn, user_id)
    conn.execute("UPDATE agents SET status = ? WHERE user_id = ?", (status, user_id))
    return get_agent(conn, user_id)


# -- departments ----------------------------------------------------------------------------

def _department(conn: sqlite3.Connection, row: sqlite3.Row) -> Department:
    agents = [r[0] for r in conn.execute(
        "SELECT user_id FROM department_agents WHERE department_id = ? ORDER BY user_id",
        (row[0],),
    )]
    return Department(id=row[0], name=row[1], enabled=bool(row[2]), agents=agents)


def get_department(conn: sqlite3.Connection, id_or_name: str) -> Department:
    """A department by id, else by name (case-insensitive), or NotFound."""
    if not isinstance(id_or_name, str) or len(id_or_name) > limits.MAX_DEPARTMENT_NAME:
        raise InvalidArgument("department must be a department id or name")
    row = conn.execute(
        "SELECT id, name, enabled FROM departments WHERE id = ? OR name_cf = ? "
        "ORDER BY id = ? DESC LIMIT 1",
        (id_or_name, id_or_name.casefold(), id_or_name),
    ).fetchone()
    if row is None:
        raise NotFound(f"no department {id_or_name!r}")
    return _department(conn, row)


def list_departments(conn: sqlite3.Connection) -> list[Department]:
    """Every department, by name."""
    rows = conn.execute(
        "SELECT id, name, enabled FROM departments ORDER BY name_cf LIMIT ?", (limits.MAX_LIST,)
    ).fetchall()
    return [_department(conn, r) for r in rows]


def create_department(
    conn: sqlite3.Connection, now: float, name: str, agent_ids: tuple[str, ...] = ()
) -> Department:
    """Create a department (unique name, case-insensitive) with these agents."""
    name = limits.text(name, "department name", limits.MAX_DEPARTMENT_NAME)
    did = new_id()
    try:
        conn.execute(
            "INSERT INTO departments (id, name, name_cf, enabled, created_at) "
            "VALUES (?, ?, ?, 1, ?)",
            (did, name, name.casefold(), now),
        )
    except INTEGRITY_ERRORS:
        raise Conflict(f"a department named {name!r} already exists") from None
    for a in agent_ids:
        add_department_agent(conn, did, a)
    return get_department(conn, did)


def add_department_agent(conn: sqlite3.Connection, department: str, user_id: str) -> Department:
    """Put an agent in a department (idempotent)."""
    dep = get_department(conn, department)
    get_agent(conn, user_id)
    conn.execute(
        "INSERT INTO department_agents (department_id, user_id) VALUES (?, ?) "
        "ON CONFLICT DO NOTHING",
        (dep["id"], user_id),
    )
    return get_department(conn, dep["id"])


def remove_department_agent(
    conn: sqlite3.Connection, department: str, user_id: str
) -> Department:
    """Take a user out of a department (idempotent)."""
    dep = get_department(conn, department)
    conn.execute(
        "DELETE FROM department_agents WHERE department_id = ? AND user_id = ?",
        (dep["id"], user_id),
    )
    return get_department(conn, dep["id"])


# -- visitors -------------------------------------------------------------------------------

_VISITOR = "SELECT id, token, name, email, custom_fields, created_at FROM visitors "


def _visitor(row: sqlite3.Row) -> Visitor:
    return Visitor(
        id=row[0], token=row[1], name=row[2], email=row[3],
        custom_fields=json.loads(row[4]), created_at=row[5],
    )


def get_visitor(conn: sqlite3.Connection, visitor_id: str) -> Visitor:
    """A visitor by id, or NotFound."""
    row = conn.execute(
        _VISITOR + "WHERE id = ?", (limits.ident(visitor_id, "visitor_id"),)
    ).fetchone()
    if row is None:
        raise NotFound(f"no visitor with id {visitor_id!r}")
    return _visitor(row)


def get_visitor_by_token(conn: sqlite3.Connection, token: str) -> Visitor:
    """A visitor by widget token, or NotFound."""
    row = conn.execute(_VISITOR + "WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise NotFound("no visitor with that token")
    return _visitor(row)


def save_visitor(
    conn: sqlite3.Connection,
    now: float,
    *,
    token: str,
    name: str | None,
    email: str | None,
    custom_fields: Mapping[str, str],
) -> Visitor:
    """Create or update the visitor with this token (fields given replace stored ones;
    custom fields merge)."""
    if not isinstance(token, str) or not limits.TOKEN_RE.fullmatch(token):
        raise InvalidArgument("visitor token must be 8..128 characters of [A-Za-z0-9._~-]")
    row = conn.execute(_VISITOR + "WHERE token = ?", (token,)).fetchone()
    if row is None:
        vid = new_id()
        conn.execute(
            "INSERT INTO visitors (id, token, name, email, custom_fields, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (vid, token, name, email, json.dumps(dict(custom_fields), sort_keys=True), now, now),
        )
        return get_visitor(conn, vid)
    old = _visitor(row)
    merged = {**old["custom_fields"], **custom_fields}
    if len(merged) > limits.MAX_FIELDS:
        raise InvalidArgument(f"a visitor may hold at most {limits.MAX_FIELDS} custom fields")
    conn.execute(
        "UPDATE visitors SET name = ?, email = ?, custom_fields = ?, updated_at = ? WHERE id = ?",
        (name if name is not None else old["name"], email if email is not None else old["email"],
         json.dumps(merged, sort_keys=True), now, old["id"]),
    )
    return get_visitor(conn, old["id"])
