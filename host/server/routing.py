"""The routing manager's choice: which agent serves a room.

Automatic selection picks, among routable agents (active users who are agents and either
`available` or holding the `bot` role, which makes them routable while offline), the one
serving the fewest open rooms; ties break on casefolded username, then user id, so the choice is
deterministic (tests and audits can predict it).
"""
from __future__ import annotations

import sqlite3

from host.server.livechat import ROUTABLE_OFFLINE_ROLE

_CANDIDATES = (
    "SELECT a.user_id FROM agents a JOIN users u ON u.id = a.user_id "
    "WHERE u.active = 1 AND (a.status = 'available' OR EXISTS ("
    " SELECT 1 FROM user_roles ur WHERE ur.user_id = a.user_id AND ur.role = ?)) "
)
_ORDER = (
    " ORDER BY (SELECT count(*) FROM rooms r WHERE r.open = 1 AND r.served_by = a.user_id),"
    " u.username_cf, a.user_id LIMIT 1"
)


def select_agent(
    conn: sqlite3.Connection, department_id: str | None, exclude: str | None = None
) -> str | None:
    """The user id of the agent to route to (within `department_id` if given, never
    `exclude`), or None when nobody is routable (the room then waits in the queue)."""
    sql = _CANDIDATES
    params: list[object] = [ROUTABLE_OFFLINE_ROLE]
    if department_id is not None:
        sql += "AND a.user_id IN (SELECT user_id FROM department_agents WHERE department_id = ?) "
        params.append(department_id)
    if exclude is not None:
        sql += "AND a.user_id != ? "
        params.append(exclude)
    row = conn.execute(sql + _ORDER, params).fetchone()
    return None if row is None else str(row[0])


def is_routable(conn: sqlite3.Connection, user_id: str) -> bool:
    """Whether this agent may be routed to right now (active; available, or a bot)."""
    return conn.execute(
        _CANDIDATES + "AND a.user_id = ?", (ROUTABLE_OFFLINE_ROLE, user_id)
    ).fetchone() is not None
