"""Users: rows, look-ups (by id, username, custom field value) and writes.

Functions here run inside a transaction the caller opened (see `embedded.py`); they validate,
write and return plain `User` dicts. Usernames and emails are unique case-insensitively through
casefolded columns with UNIQUE indexes, so the database itself refuses a duplicate even when two
host processes race.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

import msgspec

from host.server import limits
from host.server.db import new_id
from host.server.errors import Conflict, Forbidden, InvalidArgument, NotFound
from host.server.shapes import User, UserStanding
from host.store import INTEGRITY_ERRORS
from policies import argrules

# One statement per user (the bridge's hottest read pays per statement): the user's emails,
# roles and custom fields come back as one JSON document of aggregates (one decode, ~3 µs less
# than three) and are ordered in Python, because the order in which SQLite aggregates rows is
# not guaranteed.
_SELECT = (
    "SELECT u.id, u.type, u.username, u.name, u.active, u.created_by_app, u.app_id,"
    " u.created_at, json_object("
    "'e', (SELECT json_group_array(json_array(address_cf, address)) FROM user_emails"
    "  WHERE user_id = u.id),"
    " 'r', (SELECT json_group_array(role) FROM user_roles WHERE user_id = u.id),"
    " 'f', (SELECT json_group_object(key, value) FROM user_custom_fields"
    "  WHERE user_id = u.id)) AS sets"
    " FROM users u "
)

_decode = msgspec.json.Decoder().decode

# Usernames starting with this (in any case) are the host's: each install's own user is
# `app.<app_id>` (`create_app_user`). A security boundary, not a convenience: a user an app made
# there (its users.create, through the bridge or the REST bridge) would take the name another
# app's install needs for its own user, and that install could not get its user. Operators
# (admin REST, SYSTEM) keep the name: a host connected to this server as its workspace makes
# its apps' users through users.create, and an operator's squat only fails an install, cleanly.
# The rule itself is `policies.argrules.not_reserved`, shared with the author harness.
APP_USER_PREFIX = argrules.APP_USER_PREFIX


def check_not_reserved(username: str) -> str:
    """`username` unless it lies in the namespace reserved for apps' own users, compared
    casefolded as usernames are unique; InvalidArgument otherwise. For an app's creations only
    (see APP_USER_PREFIX). Users already there are untouched: only new names are checked."""
    try:
        return argrules.not_reserved(username)
    except argrules.ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None

# Constant SQL fragments only; every value is bound. Served by the (key, value) index.
FIND_BY_FIELD_SQL = (
    _SELECT  # noqa: S608
    + "WHERE u.id IN (SELECT user_id FROM user_custom_fields WHERE key = ? AND value = ?)"
    " ORDER BY u.created_at, u.id LIMIT ?"
)
IN_ROLE_SQL = (
    _SELECT  # noqa: S608
    + "WHERE u.id IN (SELECT user_id FROM user_roles WHERE role = ?) ORDER BY u.username_cf LIMIT ?"
)
PAGE_SQL = _SELECT + "ORDER BY u.username_cf LIMIT ? OFFSET ?"


def _load(row: sqlite3.Row) -> User:
    # One JSON document for the three sets (one decode, msgspec's: ~1.5 µs less than the json
    # module's on the bridge's hottest read): an aggregate over no rows is NULL there, hence
    # the empty defaults. Emails sort by their casefolded form, as the unique index has it.
    sets = _decode(row[8])
    emails, roles, fields = sets["e"], sets["r"], sets["f"]
    user: User = {  # a literal: the TypedDict's call is a dict(**kwargs), ~0.5 µs more
        "id": row[0], "type": row[1], "username": row[2], "name": row[3],
        "emails": [a for _cf, a in sorted(emails)] if emails else [],
        "roles": sorted(roles) if roles else [], "active": bool(row[4]),
        "custom_fields": dict(sorted(fields.items())) if fields else {},
        "created_by_app": row[5], "app_id": row[6], "created_at": row[7],
    }
    return user


def get(conn: sqlite3.Connection, user_id: str) -> User:
    """The user with this id, or NotFound."""
    row = conn.execute(_SELECT + "WHERE u.id = ?", (limits.ident(user_id, "user_id"),)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    return _load(row)


def get_by_username(conn: sqlite3.Connection, username: str) -> User:
    """The user with this username (case-insensitive), or NotFound."""
    if not isinstance(username, str) or len(username) > 64:
        raise InvalidArgument("username must be a string of at most 64 characters")
    row = conn.execute(_SELECT + "WHERE u.username_cf = ?", (username.casefold(),)).fetchone()
    if row is None:
        raise NotFound(f"no user with username {username!r}")
    return _load(row)


def find_by_field(conn: sqlite3.Connection, key: str, value: str) -> list[User]:
    """Users whose custom field `key` equals `value` exactly (uses the (key, value) index)."""
    key = limits.field_key(key)
    value = limits.field_value(value, key)
    rows = conn.execute(FIND_BY_FIELD_SQL, (key, value, limits.MAX_LIST)).fetchall()
    return [_load(r) for r in rows]


def exists(conn: sqlite3.Connection, user_id: str) -> bool:
    """Whether a user with this id exists."""
    return conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is not None


def check_new_roles(conn: sqlite3.Connection, roles: tuple[str, ...], *,
                    refuse_privileged: bool) -> None:
    """A new user's roles, in one statement: Forbidden naming the first privileged one when
    `refuse_privileged` (an app's creation, DESIGN rule 10), then NotFound naming the first the
    server does not know."""
    marks = ", ".join("?" * len(roles))  # placeholders only: the names are bound
    known = dict(conn.execute(
        f"SELECT name, privileged FROM roles WHERE name IN ({marks})",  # noqa: S608
        roles).fetchall())
    if refuse_privileged:
        for r in roles:
            if known.get(r):
                raise Forbidden(f"apps may not grant or remove the privileged role {r!r}")
    for r in roles:
        if r not in known:
            raise NotFound(f"no role named {r!r}")


def create(
    conn: sqlite3.Connection,
    now: float,
    *,
    username: str,
    name: str,
    type: str,
    email: str | None,
    roles: tuple[str, ...],
    custom_fields: Mapping[str, str],
    created_by_app: str | None,
    app_id: str | None = None,
) -> User:
    """Insert a user (arguments already validated by `limits`). Conflict on a taken username or
    email; NotFound on an unknown role; Forbidden on a privileged role when an app creates it
    (`created_by_app`), and InvalidArgument then on a name reserved for apps' own users. The
    caller's transaction rolls everything back on error."""
    if created_by_app is not None:  # an app never makes a user in its peers' namespace
        check_not_reserved(username)
    if not roles:
        roles = ({"user": "user", "bot": "bot", "app": "app"}[type],)
    check_new_roles(conn, roles, refuse_privileged=created_by_app is not None)
    uid = new_id()
    try:
        conn.execute(
            "INSERT INTO users (id, type, username, username_cf, name, active, created_by_app,"
            " app_id, created_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (uid, type, username, username.casefold(), name, created_by_app, app_id, now),
        )
    except INTEGRITY_ERRORS:
        raise Conflict(f"username {username!r} is already taken") from None
    emails: list[str] = []
    if email is not None:
        try:
            conn.execute(
                "INSERT INTO user_emails (user_id, address, address_cf) VALUES (?, ?, ?)",
                (uid, email, email.casefold()),
            )
        except INTEGRITY_ERRORS:
            raise Conflict(f"email {email!r} is already in use") from None
        emails.append(email)
    conn.executemany(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(uid, r) for r in roles]
    )
    if custom_fields:
        conn.executemany(
            "INSERT INTO user_custom_fields (user_id, key, value) VALUES (?, ?, ?)",
            [(uid, k, v) for k, v in custom_fields.items()],
        )
    return User(
        id=uid, type=type, username=username, name=name, emails=emails, roles=sorted(roles),
        active=True, custom_fields=dict(sorted(custom_fields.items())),
        created_by_app=created_by_app, app_id=app_id, created_at=now,
    )


def set_custom_fields(
    conn: sqlite3.Connection, user_id: str, fields: Mapping[str, str | None]
) -> User:
    """Merge `fields` into the user's custom fields (None removes a key); cap the total."""
    get(conn, user_id)  # NotFound first
    for k, v in fields.items():
        if v is None:
            conn.execute(
                "DELETE FROM user_custom_fields WHERE user_id = ? AND key = ?", (user_id, k)
            )
        else:
            conn.execute(
                "INSERT INTO user_custom_fields (user_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value",
                (user_id, k, v),
            )
    (count,) = conn.execute(
        "SELECT count(*) FROM user_custom_fields WHERE user_id = ?", (user_id,)
    ).fetchone()
    if count > limits.MAX_FIELDS:
        raise InvalidArgument(f"a user may hold at most {limits.MAX_FIELDS} custom fields")
    return get(conn, user_id)


def set_active(conn: sqlite3.Connection, user_id: str, active: bool) -> User:
    """Activate or deactivate a user (idempotent). Deactivation deletes every REST token the
    user has, in the same transaction: reactivation never brings one back."""
    cur = conn.execute("UPDATE users SET active = ? WHERE id = ?", (int(active), user_id))
    if cur.rowcount == 0:
        raise NotFound(f"no user with id {user_id!r}")
    if not active:
        conn.execute("DELETE FROM personal_tokens WHERE user_id = ?", (user_id,))
    return get(conn, user_id)


def check_not_another_apps_user(conn: sqlite3.Connection, user_id: str,
                                own_app_user: str | None) -> None:
    """Forbidden when `user_id` is another app's own user: that app's identity, which only its
    install and uninstall manage (DESIGN rules 1 and 11). A security boundary behind the gate
    for every app action that names a user to change: a policy's `any_user` widens the
    own-users rule to the workspace's people, never to another app (one app took another's
    agent offline and out of its departments)."""
    row = conn.execute("SELECT app_id FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is not None and row[0] is not None and user_id != own_app_user:
        raise Forbidden("that is another app's own user: only its install and uninstall "
                        "manage it")


def check_app_may_deactivate(conn: sqlite3.Connection, user_id: str,
                             own_app_user: str | None) -> None:
    """Forbidden when an app may not deactivate `user_id` whatever a policy says: a user
    holding a privileged role (DESIGN rule 10: deactivating the admin takes every power the
    role gives, which `roles.remove` of the role itself may never do, and ends their sign-ins),
    or another app's own user (`check_not_another_apps_user`). A security boundary behind the
    gate: `any_user` widens the own-users rule to ordinary users only. NotFound for an unknown
    user."""
    check_not_another_apps_user(conn, user_id, own_app_user)
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.name = ur.role"
        " WHERE ur.user_id = u.id AND r.privileged <> 0) FROM users u WHERE u.id = ?",
        (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    if row[0]:
        raise Forbidden("apps may not deactivate a user holding a privileged role")


def standing(conn: sqlite3.Connection, user_id: str, *, privileged: bool) -> UserStanding:
    """Who `user_id` is, in one statement (its own snapshot): the gate's facts for an action
    naming it (`EmbeddedServer.user_standing`); whether it holds a privileged role only when
    `privileged` (a deactivation's). NotFound for an unknown user."""
    row = conn.execute(
        "SELECT u.created_by_app, u.app_id, CASE WHEN ? = 1 THEN EXISTS (SELECT 1"
        " FROM user_roles ur JOIN roles r ON r.name = ur.role"
        " WHERE ur.user_id = u.id AND r.privileged <> 0) END"
        " FROM users u WHERE u.id = ?", (1 if privileged else 0, user_id)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    return UserStanding(row[0], row[1], None if row[2] is None else bool(row[2]))


def created_by(conn: sqlite3.Connection, user_id: str) -> str | None:
    """The app that created this user through a bridge (None: not app-created). NotFound."""
    row = conn.execute("SELECT created_by_app FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    return row[0]  # type: ignore[no-any-return]


def count_active_app_created(conn: sqlite3.Connection) -> int:
    """Active users created by any app (the workspace seat ceiling counts these): the count
    the database keeps exact with every write to `users` (`app_seats`, schema version 4)."""
    (n,) = conn.execute("SELECT n FROM app_seats WHERE id = 1").fetchone()
    return int(n)


def seats_in_use(conn: sqlite3.Connection, pending_op_ids: Iterable[str]) -> int:
    """Active app-created users plus the pending creations not applied yet (their op_id is not
    in `ops`). Run in one snapshot: a creation that commits meanwhile is counted exactly once,
    as a user or as pending."""
    used = count_active_app_created(conn)
    for op_id in set(pending_op_ids):
        if conn.execute("SELECT 1 FROM ops WHERE op_id = ?", (op_id,)).fetchone() is None:
            used += 1
    return used


def count_created_by(conn: sqlite3.Connection, app_id: str) -> int:
    """Users (active or not) created by this app."""
    (n,) = conn.execute(
        "SELECT count(*) FROM users WHERE created_by_app = ?", (app_id,)
    ).fetchone()
    return int(n)


def deactivate_created_by(conn: sqlite3.Connection, app_id: str) -> int:
    """Deactivate every active user this app created, deleting their REST tokens in the same
    transaction as `set_active` does (a token kept would work again on reactivation); returns
    how many changed."""
    conn.execute(
        "DELETE FROM personal_tokens WHERE user_id IN"
        " (SELECT id FROM users WHERE created_by_app = ? AND active = 1)", (app_id,)
    )
    cur = conn.execute(
        "UPDATE users SET active = 0 WHERE created_by_app = ? AND active = 1", (app_id,)
    )
    return cur.rowcount


def app_user(conn: sqlite3.Connection, app_id: str) -> User | None:
    """The app's own user, if it has one."""
    row = conn.execute(_SELECT + "WHERE u.app_id = ?", (app_id,)).fetchone()
    return None if row is None else _load(row)


def page(conn: sqlite3.Connection, offset: int, count: int) -> tuple[list[User], int]:
    """Users by user name, `count` of them (at most MAX_LIST) from `offset`, and how many there
    are."""
    (total,) = conn.execute("SELECT count(*) FROM users").fetchone()
    rows = conn.execute(PAGE_SQL, (min(count, limits.MAX_LIST), offset)).fetchall()
    return [_load(r) for r in rows], int(total)


def in_role(conn: sqlite3.Connection, role: str) -> list[User]:
    """Users holding `role`, by user name (at most MAX_LIST)."""
    rows = conn.execute(IN_ROLE_SQL, (role, limits.MAX_LIST)).fetchall()
    return [_load(r) for r in rows]


def set_profile(conn: sqlite3.Connection, user_id: str, name: str | None,
                email: str | None) -> User:
    """Change a user's display name and/or its one e-mail address. NotFound; Conflict when the
    address belongs to someone else."""
    get(conn, user_id)
    if name is not None:
        conn.execute("UPDATE users SET name = ? WHERE id = ?", (name, user_id))
    if email is not None:
        conn.execute("DELETE FROM user_emails WHERE user_id = ?", (user_id,))
        try:
            conn.execute("INSERT INTO user_emails (user_id, address, address_cf) VALUES (?, ?, ?)",
                         (user_id, email, email.casefold()))
        except INTEGRITY_ERRORS:
            raise Conflict(f"email {email!r} is already in use") from None
    return get(conn, user_id)


def delete(conn: sqlite3.Connection, user_id: str) -> None:
    """Delete a user who never served a livechat room (a room's history keeps its agent);
    Conflict otherwise, and for an app's own user (it goes with its app)."""
    user = get(conn, user_id)
    if user["type"] == "app":
        raise Conflict("an app's own user goes with its app (uninstall the app)")
    if conn.execute("SELECT 1 FROM rooms WHERE served_by = ? LIMIT 1", (user_id,)).fetchone():
        raise Conflict("the user served livechat rooms, whose history names it; deactivate it")
    conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
