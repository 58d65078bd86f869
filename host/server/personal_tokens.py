"""REST access tokens (Rocket.Chat's personal access tokens): minted for a user, shown once,
stored only as a SHA-256 digest, checked on every request (`X-User-Id` + `X-Auth-Token`).

A digest is enough (no salt/KDF): tokens are 256-bit random, not guessable passwords, so the
stored digest cannot be brute-forced back into a token.
"""
from __future__ import annotations

import hashlib
import secrets

from host.server import limits, users
from host.server.db import Database
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound
from host.server.principals import SYSTEM
from host.server.shapes import User

# 32 random bytes: the token is the whole credential.
TOKEN_BYTES = 32
# Tokens longer than this cannot be ours; refused before hashing arbitrary attacker input.
MAX_TOKEN_LEN = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mint(db: Database, user_id: str, name: str, now: float) -> str:
    """Mint a token for `user_id` and return it (the only time it exists in clear)."""
    name = limits.text(name, "token name", 64)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with db.write() as c:
        users.get(c, user_id)
        c.execute(
            "INSERT INTO personal_tokens (token_hash, user_id, name, created_at)"
            " VALUES (?, ?, ?, ?)",
            (_digest(token), user_id, name, now),
        )
    return token


def verify(db: Database, user_id: str | None, token: str | None) -> str | None:
    """The user id if `token` belongs to active user `user_id`, else None."""
    if not user_id or not token or len(token) > MAX_TOKEN_LEN or len(user_id) > limits.MAX_ID:
        return None
    row = db.conn().execute(
        "SELECT t.user_id, u.active FROM personal_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ?",
        (_digest(token),),
    ).fetchone()
    if row is None or not secrets.compare_digest(str(row[0]), user_id) or not row[1]:
        return None
    return user_id


def revoke_all(db: Database, user_id: str) -> int:
    """Remove every token of a user; returns how many."""
    with db.write() as c:
        return c.execute("DELETE FROM personal_tokens WHERE user_id = ?", (user_id,)).rowcount


def ensure_service_user(server: EmbeddedServer, username: str) -> tuple[User, str]:
    """Create (or find) the operator's service user, an `admin`, and mint a fresh token for it.
    Returns (user, token); print the token once and never store it."""
    try:
        user = server.users_get_by_username(SYSTEM, username)
    except NotFound:
        user = server.users_create(SYSTEM, username, username, "user", roles=["admin"])
    if "admin" not in user["roles"]:
        user = server.roles_assign(SYSTEM, user["id"], "admin")
    if not user["active"]:
        user = server.users_set_active(SYSTEM, user["id"], True)
    return user, mint(server.db, user["id"], "service", server.clock.now())
