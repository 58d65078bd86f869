"""Passwords and sign-in for the REST API, as Rocket.Chat serves them.

- `users.create` / `users.update` with a `password` store a scrypt hash (the `cryptography`
  library's implementation; a random salt per password, parameters kept in the stored string so
  they can be raised later without breaking old hashes).
- `POST login {user, password}` checks it and mints an auth token (the same token table as
  personal access tokens, kind `login`); `POST logout` revokes the token that made the request.
- Failed sign-ins are limited per account, as Rocket.Chat's "block failed login attempts by
  username" means them: past `MAX_FAILURES` in `FAILURE_WINDOW_S`, the account is refused until
  the window has passed, right password or not, whichever of its names (user name, e-mail
  address) is typed. A name that resolves to no account is counted by itself. The budget is
  kept in the server's store (`signin_budget`), so every process serving it (REST fronts, hosts
  sharing a home or a PostgreSQL store, the console) spends one budget, and a restart keeps it.
  `Failures` is a table in this process, for a Rocket.Chat workspace's console sign-in only
  (the workspace keeps its own budget too).
- Deactivating a user deletes every token it has (`users.set_active`), so reactivation never
  brings one back. A new password deletes them too (`store_hash`), all but the one token that
  made the request when users change their own, as Rocket.Chat logs the other sessions out.
- `sign_in_binding` is what a console session is bound to: the stored password record and the
  user's sign-in epoch, which the store moves when the user loses an admin-class role or is
  deactivated (`db._SCHEMA_V5`) and never moves back.
"""
from __future__ import annotations

import base64
import functools
import logging
import secrets
import sqlite3
import threading
import time
from collections import deque

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from host.server import signin_budget, users
from host.server.db import Database
from host.server.errors import InvalidArgument, Unavailable
from host.server.personal_tokens import digest, mint, revoke_all_but
from host.store import StoreError
from host.store.base import PgError, PgIntegrityError
from host.store.sqlite import disk_full

log = logging.getLogger("stockade.server.auth")

# scrypt cost: 2**15 x 8 x 1 is OWASP's recommended minimum (32 MiB, ~0.1 s here). Guards
# against offline guessing of a stolen server store's password hashes.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
# Password length bounds. The floor is a usable minimum; the ceiling guards the hashing cost
# of attacker-sent input (scrypt's time does not depend on it, but the request body does).
MIN_PASSWORD, MAX_PASSWORD = 8, 256
# Failed sign-ins per account (or per name that names none) before it is refused for the rest of
# the window, and the names remembered at once: `signin_budget` says what each guards. Counted
# per account, so its user name and its e-mail address do not each get their own ten guesses.
MAX_FAILURES = signin_budget.MAX_FAILURES
FAILURE_WINDOW_S = signin_budget.FAILURE_WINDOW_S
MAX_TRACKED_NAMES = signin_budget.MAX_TRACKED_NAMES
# Characters of a sign-in name looked at. Guards: the failure table's keys; no user name or
# e-mail address is longer.
MAX_NAME = 320

_PREFIX = "scrypt"


def _kdf(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=HASH_BYTES, n=n, r=r, p=p)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` for a password of acceptable length (InvalidArgument if not)."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidArgument(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _kdf(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(password.encode("utf-8"))
    return "$".join([_PREFIX, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def _matches(stored: str, password: str) -> bool:
    try:
        name, n, r, p, salt, key = stored.split("$")
        if name != _PREFIX:
            return False
        _kdf(base64.b64decode(salt), int(n), int(r), int(p)).verify(
            password.encode("utf-8"), base64.b64decode(key))
    except (ValueError, InvalidKey, UnicodeError):
        return False
    return True


@functools.cache
def _dummy() -> str:
    """Checked when the name is unknown, so a miss costs what a wrong password costs (no
    user-name oracle in the response time). Made on first use, not at import: every process
    that imports the REST layer (each CLI command through the gate) would pay ~0.1 s for it."""
    return hash_password(secrets.token_urlsafe(16))


def set_password(db: Database, user_id: str, password: str, *,
                 keep_token: str | None = None) -> None:
    """Store (or replace) a user's password hash and revoke the user's tokens (`store_hash`).
    NotFound for an unknown user."""
    store_hash(db, user_id, hash_password(password),  # hashed outside the write: ~0.1 s
               keep_token=keep_token)


def store_hash(db: Database, user_id: str, stored: str, *,
               keep_token: str | None = None) -> None:
    """Store a hash made by `hash_password` and, in the same transaction, delete every REST
    token of the user (sign-ins, personal and admin-minted tokens) but `keep_token`: a password
    reset is how an operator takes an account back, so nothing the old password let anyone mint
    outlives it. `keep_token` is for users changing their own password: the token making that
    request stays, as Rocket.Chat keeps the session in use. NotFound for an unknown user."""
    with db.write() as c:
        users.get(c, user_id)
        c.execute("INSERT INTO user_passwords (user_id, hash) VALUES (?, ?) ON CONFLICT (user_id)"
                  " DO UPDATE SET hash = excluded.hash", (user_id, stored))
        revoke_all_but(c, user_id, keep_token)


def _blocking(seen: deque[float], now: float) -> bool:
    """Whether these failures block their name at `now` (those past the window are dropped)."""
    while seen and seen[0] <= now - FAILURE_WINDOW_S:
        seen.popleft()
    return len(seen) >= MAX_FAILURES


class Failures:
    """Recent failed sign-ins per key (`failure_key`), in this process: the console's sign-in
    to a Rocket.Chat workspace, whose password the workspace checks (and whose accounts this
    process cannot tell from names). The embedded server's sign-ins spend the budget kept in its
    store instead (`signin_budget`), shared by every process serving it.

    The table holds at most MAX_TRACKED_NAMES names, least recently failed first. Making room
    forgets the oldest name that is not blocked, never a blocked one: otherwise failures for
    invented names would push a blocked victim out and reopen its password to guessing. When
    every remembered name is blocked, a name not in the table is refused (as if blocked) until
    the earliest of those blocks ends: new names' sign-ins wait out a window rather than a block
    being forgotten. Filling the table so takes MAX_FAILURES x MAX_TRACKED_NAMES failed
    sign-ins within one window, each paying a scrypt check."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, deque[float]] = {}
        self._full_until = 0.0  # names not in the table are refused before this time

    def blocked(self, name: str, now: float) -> bool:
        with self._lock:
            seen = self._by_name.get(name)
            if seen is None:
                return now < self._full_until and len(self._by_name) >= MAX_TRACKED_NAMES
            return _blocking(seen, now)

    def failed(self, name: str, now: float) -> None:
        with self._lock:
            seen = self._by_name.pop(name, None)  # re-inserted below: now the newest
            if seen is None:
                if len(self._by_name) >= MAX_TRACKED_NAMES and not self._make_room(now):
                    return  # every name is blocked: this one is refused by `blocked` for now
                seen = deque(maxlen=MAX_FAILURES)
            seen.append(now)
            self._by_name[name] = seen

    def _make_room(self, now: float) -> bool:
        """Forget the least recently failed name that is not blocked; if there is none, refuse
        names not in the table until the earliest block ends, and say False. A scan of at most
        MAX_TRACKED_NAMES entries, next to a scrypt check per failed sign-in."""
        for key, seen in self._by_name.items():
            if not _blocking(seen, now):
                del self._by_name[key]
                return True
        self._full_until = min(s[0] for s in self._by_name.values()) + FAILURE_WINDOW_S
        return False

    def clear(self, name: str) -> None:
        with self._lock:
            self._by_name.pop(name, None)


class LoginBlocked(Exception):
    """Too many failed sign-ins for this account (or name); try again after the window."""


class SignInUnavailable(Unavailable):
    """The server's store could not count a sign-in attempt (its write lock held past the wait
    by a wedged process, read-only, full, unreachable): the sign-in is refused and its password
    never checked, since an attempt is checked only once counted. The REST login answers 503
    (`error-disk-full` when the disk is full), the console a 503 page; one log line, no
    traceback (the route is public: anyone's attempt would otherwise log one)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__("sign-in is unavailable: the server's store cannot count the attempt "
                         "now; try again later")
        if disk_full(exc):
            self.code = "disk_full"


def _store_failure(exc: BaseException) -> bool:
    """Whether `exc` is the store failing to take a write (not a constraint deciding)."""
    return isinstance(exc, (sqlite3.OperationalError, PgError, StoreError)) \
        and not isinstance(exc, PgIntegrityError)


def failure_key(store: object, name: str, user_id: str | None) -> str:
    """The `Failures` key of a sign-in: the account when the typed name resolves to one, so its
    user name and its e-mail address share one budget; else the typed name (casefolded and cut
    to MAX_NAME), so guesses at unknown names stay bounded too. `store` names the server (one
    process may serve several stores: tests do; the console's workspace). The two kinds are
    tagged apart: a name typed to look like an account's key is still only a name."""
    return f"{store}\0account\0{user_id}" if user_id is not None else f"{store}\0name\0{name}"


def login(db: Database, who: str, password: str,
          now: float | None = None) -> tuple[str, str] | None:
    """(user id, new auth token) when `who` (user name or e-mail) and `password` match an
    active user; None otherwise. Raises LoginBlocked past the failure limit."""
    at = time.time() if now is None else now
    user_id = check(db, who, password, at)
    return None if user_id is None else (user_id, mint(db, user_id, "login", at, kind="login"))


def check(db: Database, who: str, password: str, at: float) -> str | None:
    """The user id when `who` and `password` match an active user, counting failures (`login`
    also mints a REST token)."""
    matched = check_record(db, who, password, at)
    return None if matched is None else matched[0]


def _binding(record: str, epoch: int) -> str:
    return f"{int(epoch)}\0{record}"


def sign_in_binding(db: Database, user_id: str) -> str | None:
    """What a sign-in that must not outlive the user's standing is bound to: the stored password
    record and the sign-in epoch, read in one statement; None when the user has no password (or
    does not exist). It changes with a new password (even the same one again: a fresh salt), a
    lost admin-class role and a deactivation, and never comes back to an earlier value."""
    row = db.conn().execute(
        "SELECT p.hash, u.sign_in_epoch FROM users u JOIN user_passwords p ON p.user_id = u.id"
        " WHERE u.id = ?", (user_id,)).fetchone()
    return _binding(row[0], row[1]) if row is not None and row[0] else None


def check_record(db: Database, who: str, password: str,
                 at: float) -> tuple[str, str] | None:
    """(user id, its `sign_in_binding` as the password matched it) as `check` decides it. The
    console signs in with this and binds its session to that very binding, read in the same
    statement as the password record and the active flag, so a password change, a demotion or a
    deactivation while the check ran does not leave a session opened under the old standing.

    An account's failures count against the account, a name that resolves to none against the
    name, in the store every process serving it shares (`signin_budget`). Either way the name is
    looked up, then the attempt counted (or refused as blocked) before the password is looked
    at, then a scrypt check made (against a dummy record for an unknown name): the same answers
    and the same work whether the account exists or not. A match takes the account's failures
    counted before it back, its own attempt with them (not those counted while it was checked)."""
    name = who.strip().casefold()[:MAX_NAME]
    row = db.conn().execute(
        "SELECT u.id, u.active, p.hash, u.sign_in_epoch FROM users u"
        " LEFT JOIN user_passwords p ON p.user_id = u.id"
        " WHERE u.username_cf = ? OR u.id IN (SELECT user_id FROM user_emails WHERE address_cf = ?)"
        " LIMIT 1", (name, name)).fetchone()
    user_id = None if row is None else str(row[0])
    key = signin_budget.name_key(name) if user_id is None else signin_budget.account_key(user_id)
    try:
        # A shared store's hosts time the window by its server's clock (`signin_budget.count`).
        number = signin_budget.count(db, key, user_id, at if db.shared is None else None)
    except Exception as exc:
        if user_id is not None and isinstance(exc, (sqlite3.IntegrityError, PgIntegrityError)):
            return None  # the account was deleted since the look-up: refused, nothing checked
        if not _store_failure(exc):
            raise
        log.warning("a sign-in was refused: the server's store (%s) could not count it: %s",
                    db.path, str(exc)[:200])
        raise SignInUnavailable(exc) from None
    if number is None:
        raise LoginBlocked(name)
    stored = row[2] if row is not None and row[2] else _dummy()
    ok = _matches(stored, password) and row is not None and bool(row[1]) and bool(row[2])
    if not ok:
        return None  # the attempt counted above is this failure
    try:
        signin_budget.clear(db, key, number)
    except Exception as exc:  # the match stays counted as a failure: refused, fail closed
        if not _store_failure(exc):
            raise
        log.warning("a sign-in was refused: the server's store (%s) could not take back its "
                    "attempt: %s", db.path, str(exc)[:200])
        raise SignInUnavailable(exc) from None
    return str(row[0]), _binding(row[2], row[3])


def logout(db: Database, user_id: str, token: str) -> bool:
    """Revoke the token that made the request (it must be this user's)."""
    with db.write() as c:
        cur = c.execute("DELETE FROM personal_tokens WHERE token_hash = ? AND user_id = ?",
                        (digest(token), user_id))
        return bool(cur.rowcount > 0)

