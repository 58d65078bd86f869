"""Roles: the catalogue (with the privileged flag) and per-user assignment.

`privileged` marks admin-class roles. The host's gate refuses them to apps whatever a policy says
(DESIGN rule 10) and asks `is_privileged` for the server's own view; the embedded server refuses
them to an app principal as well, so the rule holds on this side too.
"""
from __future__ import annotations

import sqlite3

from host.server import limits, users
from host.server.errors import InvalidArgument, NotFound
from host.server.shapes import Role, User


def list_roles(conn: sqlite3.Connection) -> list[Role]:
    """Every role the server knows, by name."""
    return [
        Role(name=r[0], privileged=bool(r[1]), description=r[2])
        for r in conn.execute("SELECT name, privileged, description FROM roles ORDER BY name")
    ]


def is_privileged(conn: sqlite3.Connection, role: str) -> bool:
    """Whether `role` is admin-class on this server. An unknown role is not privileged (and any
    attempt to assign it fails with NotFound)."""
    row = conn.execute("SELECT privileged FROM roles WHERE name = ?", (role,)).fetchone()
    return bool(row[0]) if row else False


def get_role(conn: sqlite3.Connection, role: str) -> Role:
    """The role named `role`, or NotFound."""
    row = conn.execute(
        "SELECT name, privileged, description FROM roles WHERE name = ?", (role,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no role named {role!r}")
    return Role(name=row[0], privileged=bool(row[1]), description=row[2])


def assign(conn: sqlite3.Connection, user_id: str, role: str) -> User:
    """Give `user_id` the role (idempotent); NotFound for an unknown user or role."""
    users.get(conn, user_id)
    get_role(conn, role)
    conn.execute(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (user_id, role),
    )
    (n,) = conn.execute("SELECT count(*) FROM user_roles WHERE user_id = ?", (user_id,)).fetchone()
    if n > limits.MAX_ROLES_PER_USER:
        raise InvalidArgument(f"a user may hold at most {limits.MAX_ROLES_PER_USER} roles")
    return users.get(conn, user_id)


def remove(conn: sqlite3.Connection, user_id: str, role: str) -> User:
    """Take the role from `user_id` (idempotent); NotFound for an unknown user or role."""
    users.get(conn, user_id)
    get_role(conn, role)
    conn.execute("DELETE FROM user_roles WHERE user_id = ? AND role = ?", (user_id, role))
    return users.get(conn, user_id)


def has_any(conn: sqlite3.Connection, user_id: str, roles: frozenset[str]) -> bool:
    """Whether the user holds at least one of `roles`."""
    return any(
        r[0] in roles
        for r in conn.execute("SELECT role FROM user_roles WHERE user_id = ?", (user_id,))
    )
