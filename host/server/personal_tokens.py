"""REST access tokens (Rocket.Chat's personal access tokens): minted for a user, shown once,
stored only as a SHA-256 digest, checked on every request (`X-User-Id` + `X-Auth-Token`).

A digest is enough (no salt/KDF): tokens are 256-bit random, not guessable passwords, so the
stored digest cannot be brute-forced back into a token.
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3

from host.server import limits, users
from host.server.db import Database
from host.server.embedded import EmbeddedServer
from host.server.errors import Conflict, InvalidArgument, NotFound
from host.server.principals import SYSTEM
from host.server.shapes import User

# 32 random bytes: the token is the whole credential.
TOKEN_BYTES = 32
# Tokens longer than this cannot be ours; refused before hashing arbitrary attacker input.
MAX_TOKEN_LEN = 128
# Sign-in tokens one user may hold at once; the oldest end as a new one is made. Guards the
# store against growth without bound (every sign-in used to add a row forever: a script signing
# in once a second added 86,400 a day) and bounds how many stolen sessions can outlive a
# sign-out elsewhere. Rocket.Chat keeps every login token until it expires (90 days); 50 is
# more devices and browsers than a person uses at once. Personal tokens are named and few.
MAX_LOGIN_TOKENS = 50
# Personal access tokens a user may mint itself (users.generatePersonalAccessToken). They never
# expire; a person names a handful (CI, a script), not hundreds. Service tokens (below) are the
# operator's, minted at the host's own command line and audited, and are not counted here: they
# used to be, so an operator's 20 mints left the account none of its own.
MAX_PERSONAL_TOKENS = 20
# Admin service tokens (`serve --mint-token`, kind 'service'). Each is a bearer credential with
# an admin's whole power, bound to nothing (no client, no address): a copy left in a CI log, a
# shell history or a backup is a workspace takeover for as long as it is valid. Guarding that:
# - DEFAULT_SERVICE_TTL_S, 30 days: a leaked copy is worth a month at most, the lifetime GitHub
#   proposes for a new personal access token; rotation is one command (`--replace`).
# - MAX_SERVICE_TTL_S, 365 days: no service token outlives a year (no "never"): an operator who
#   asks for longer is refused, so every admin credential is rotated at least yearly.
# - MIN_SERVICE_TTL_S, one minute: shorter is a token that expires before it is pasted.
DEFAULT_SERVICE_TTL_S = 30 * 86_400
MAX_SERVICE_TTL_S = 365 * 86_400
MIN_SERVICE_TTL_S = 60
# Unexpired service tokens one user may hold at once: minting without `--replace` (or a script
# that forgets to) adds a row each time, each an admin key; past this the mint is refused, naming
# `--replace` (rule 13). Expired ones are deleted by the next mint.
MAX_SERVICE_TOKENS = 20


class TooManyServiceTokens(InvalidArgument):
    """The user already holds MAX_SERVICE_TOKENS unexpired service tokens."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mint(db: Database, user_id: str, name: str, now: float, *, kind: str = "personal") -> str:
    """Mint a token for `user_id` and return it (the only time it exists in clear). `kind`:
    `personal` (an access token an operator or the user named) or `login` (a sign-in)."""
    name = limits.text(name, "token name", 64)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    hashed = digest(token)
    with db.write() as c:
        users.get(c, user_id)
        c.execute(
            "INSERT INTO personal_tokens (token_hash, user_id, name, created_at, kind)"
            " VALUES (?, ?, ?, ?, ?)",
            (hashed, user_id, name, now, kind),
        )
        if kind == "login":
            # The user's oldest sign-ins beyond the cap end here (the new one never).
            c.execute(
                "DELETE FROM personal_tokens WHERE user_id = ? AND kind = 'login'"
                " AND token_hash <> ? AND token_hash NOT IN (SELECT token_hash FROM"
                " personal_tokens WHERE user_id = ? AND kind = 'login' AND token_hash <> ?"
                " ORDER BY created_at DESC, token_hash LIMIT ?)",
                (user_id, hashed, user_id, hashed, MAX_LOGIN_TOKENS - 1),
            )
    return token


def mint_named(db: Database, user_id: str, name: str, now: float) -> str:
    """A personal access token a user asks for itself (users.generatePersonalAccessToken): as
    Rocket.Chat, a name the user already gave a token is refused (Conflict); and at most
    MAX_PERSONAL_TOKENS per user. Guards: a signed-in account minting tokens without end, each
    a credential that never expires and outlives a sign-out."""
    name = limits.text(name, "token name", 64)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with db.write() as c:
        users.get(c, user_id)
        held = [str(r[0]) for r in c.execute(
            "SELECT name FROM personal_tokens WHERE user_id = ? AND kind = 'personal'",
            (user_id,))]
        if name in held:
            raise Conflict("A token with this name already exists")
        if len(held) >= MAX_PERSONAL_TOKENS:
            raise InvalidArgument(f"at most {MAX_PERSONAL_TOKENS} personal access tokens per "
                                  "user")
        c.execute(
            "INSERT INTO personal_tokens (token_hash, user_id, name, created_at, kind)"
            " VALUES (?, ?, ?, ?, 'personal')", (digest(token), user_id, name, now))
    return token


def mint_service(db: Database, user_id: str, now: float, ttl_s: float, *,
                 replace: bool = False) -> tuple[str, int]:
    """An admin service token for `user_id`, valid for `ttl_s` seconds from `now` (the caller
    validated it: MIN_SERVICE_TTL_S..MAX_SERVICE_TTL_S). Returns (token, how many earlier
    service tokens `replace` revoked).

    With `replace`, the user's earlier service tokens are deleted in the transaction that stores
    the new one: there is no moment with none valid (a store that refuses the new row keeps the
    old ones) and, once this returns, none but the new one is (other kinds of token stay: the
    user's own personal tokens and sign-ins are not the operator's to rotate)."""
    if not MIN_SERVICE_TTL_S <= ttl_s <= MAX_SERVICE_TTL_S:
        raise InvalidArgument(f"a service token lives {MIN_SERVICE_TTL_S} s to "
                              f"{MAX_SERVICE_TTL_S} s")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with db.write() as c:
        users.get(c, user_id)
        # Rows nobody can use any more: gone before they are counted.
        c.execute("DELETE FROM personal_tokens WHERE user_id = ? AND kind = 'service'"
                  " AND expires_at IS NOT NULL AND expires_at <= ?", (user_id, now))
        replaced = 0
        if replace:
            replaced = int(c.execute("DELETE FROM personal_tokens WHERE user_id = ?"
                                     " AND kind = 'service'", (user_id,)).rowcount)
        else:
            live = int(c.execute("SELECT count(*) FROM personal_tokens WHERE user_id = ?"
                                 " AND kind = 'service'", (user_id,)).fetchone()[0])
            if live >= MAX_SERVICE_TOKENS:
                raise TooManyServiceTokens(
                    f"the user holds {live} unexpired service tokens (at most "
                    f"{MAX_SERVICE_TOKENS}): mint with --replace, or --revoke-tokens first")
        c.execute(
            "INSERT INTO personal_tokens (token_hash, user_id, name, created_at, kind,"
            " expires_at) VALUES (?, ?, 'service', ?, 'service', ?)",
            (digest(token), user_id, now, now + ttl_s))
    return token, replaced


def verify(db: Database, user_id: str | None, token: str | None, now: float) -> str | None:
    """The user id if `token` belongs to active user `user_id` and has not expired at `now`,
    else None. An expired token takes the path an unknown one takes (the row is not found):
    the answer, and the work before it, tell a holder nothing about which it was."""
    if not user_id or not token or len(token) > MAX_TOKEN_LEN or len(user_id) > limits.MAX_ID:
        return None
    row = db.conn().execute(
        "SELECT t.user_id, u.active FROM personal_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?)",
        (digest(token), now),
    ).fetchone()
    if row is None or not secrets.compare_digest(str(row[0]), user_id) or not row[1]:
        return None
    return user_id


def held(db: Database, user_id: str) -> list[tuple[str, str, float, float | None]]:
    """(name, kind, created_at, expires_at or None for never) of every token `user_id` holds,
    oldest first: what an operator is shown (`serve --list-tokens`). Only the digest is stored,
    so no token is ever shown."""
    return [(str(r[0]), str(r[1]), float(r[2]), None if r[3] is None else float(r[3]))
            for r in db.conn().execute(
                "SELECT name, kind, created_at, expires_at FROM personal_tokens"
                " WHERE user_id = ? ORDER BY created_at, name", (user_id,))]


def revoke_all(db: Database, user_id: str) -> int:
    """Remove every token of a user; returns how many."""
    with db.write() as c:
        return revoke_all_but(c, user_id, None)


def revoke_all_but(conn: sqlite3.Connection, user_id: str, keep: str | None) -> int:
    """Remove every token of a user but `keep` (a token in clear: the one making the request,
    when there is one to keep), inside the caller's write transaction; returns how many."""
    if keep is None:
        cur = conn.execute("DELETE FROM personal_tokens WHERE user_id = ?", (user_id,))
    else:
        cur = conn.execute("DELETE FROM personal_tokens WHERE user_id = ? AND token_hash <> ?",
                           (user_id, digest(keep)))
    return int(cur.rowcount)


class NotAServiceUser(ValueError):
    """The user name exists but is no active admin: minting would promote or revive it."""


def service_user(server: EmbeddedServer, username: str) -> User:
    """Create the operator's service user (an `admin`), or find an existing active admin of
    that name.

    An existing user that is not an active admin is refused (NotAServiceUser), never promoted
    or reactivated: a mistyped name must not turn a colleague's account into an admin key."""
    try:
        user = server.users_get_by_username(SYSTEM, username)
    except NotFound:
        user = server.users_create(SYSTEM, username, username, "user", roles=["admin"])
    if "admin" not in user["roles"] or not user["active"]:
        state = "deactivated" if not user["active"] else "not an admin"
        raise NotAServiceUser(f"user {user['username']!r} exists and is {state}")
    return user


def ensure_service_user(server: EmbeddedServer, username: str, *,
                        ttl_s: float = DEFAULT_SERVICE_TTL_S,
                        replace: bool = False) -> tuple[User, str]:
    """`service_user`, and a fresh service token for it, valid `ttl_s` seconds (`replace`:
    the user's earlier service tokens end as it is stored, `mint_service`). Returns (user,
    token); print the token once and never store it."""
    user = service_user(server, username)
    token, _ = mint_service(server.db, user["id"], server.clock.now(), ttl_s, replace=replace)
    return user, token
