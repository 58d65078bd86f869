"""Who may sign in to the console, against the server the host serves.

The console signs in the server's own admins: with the embedded server, its users and password
hashes (`host.server.auth`); against a Rocket.Chat workspace, the workspace's (its
`POST /api/v1/login`, whose token is revoked at once, then the user's roles read with the
service account). Either way the operator's password never reaches Stockade's stores, failed
sign-ins are counted: on the embedded server per account, in its store, the one budget its REST
login and every other process serving it spend (`host.server.signin_budget`); against a
workspace per typed name, in this process (`auth.Failures`: its accounts are not resolved
before its login answers, and the workspace keeps its own budget), and a session lasts only
while its user is still an active admin and its credential is the one it was opened under:
`current` and `credential` are asked at every request.

The credential is a digest of the user's `auth.sign_in_binding`: the stored password record and
the user's sign-in epoch, which the server's store moves, in the same transaction, whenever the
user loses an admin-class role or is deactivated, and never moves back. So a new password (even
the same one again: a fresh salt), a demotion or a deactivation ends every session opened
before it, even one that made no request while its user was out and whose user has the role
and the active flag back by its next request.

A workspace does not show Stockade its users' password records or any such marker: against
one, `credential` is the same for every sign-in, a password reset on the workspace does not end
a console session, a demotion ends one only when a request of it (or of another session of the
user) finds the user out, and the session's absolute lifetime (`sessions.MAX_AGE_S`) is what
bounds it.
"""
from __future__ import annotations

import hashlib
import time
from typing import NamedTuple, Protocol

import httpx

from host.server import auth
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM
from host.server.remote.server import RemoteServer
from host.server.shapes import User

# The role a console operator must hold, on either server (Rocket.Chat's workspace admin).
OPERATOR_ROLE = "admin"
# How long a sign-in waits for the workspace (s). Guards a console request thread against a
# workspace that does not answer; the operator sees "cannot reach the workspace".
WORKSPACE_LOGIN_TIMEOUT_S = 10.0
# Longest name or password sent to the workspace. Guards the workspace (and the log of a proxy
# in front of it) against a megabyte typed into the sign-in form.
MAX_CREDENTIAL = 256


class Unreachable(Exception):
    """The workspace did not answer a sign-in (down, slow, or not Rocket.Chat). `words` is what
    the sign-in page says (503)."""

    words = "Cannot reach the workspace to check the password; try again when it answers."


class StoreUnavailable(Unreachable):
    """The embedded server's store could not count the sign-in (`auth.SignInUnavailable`):
    refused, its password never checked; a 503 page, not a 500 with a traceback."""

    words = "The server's store cannot take the sign-in now; try again in a moment."


# Failed console sign-ins to a Rocket.Chat workspace, in this process (see the module docstring).
FAILURES = auth.Failures()

# What `credential` answers for a workspace's users, whose password records Stockade cannot
# read (see the module docstring).
WORKSPACE_CREDENTIAL = "workspace"


class SignedIn(NamedTuple):
    user: User
    credential: str  # the credential the password matched, as `Operators.credential` says it


def credential_of(binding: str | None) -> str | None:
    """A digest of a user's `auth.sign_in_binding` (it holds the stored password record): the
    console keeps this, never the record."""
    return None if binding is None else hashlib.sha256(binding.encode()).hexdigest()


class Operators(Protocol):
    """The console's view of the server's admins."""

    def sign_in(self, who: str, password: str) -> SignedIn | None:
        """The user and the credential the password matched when `who`/`password` are right
        and the user is an active admin; None otherwise. Raises `auth.LoginBlocked` after too
        many failures for the name."""
        ...

    def current(self, user_id: str) -> User | None:
        """The user while still an active admin, else None (the session ends)."""
        ...

    def credential(self, user_id: str) -> str | None:
        """The user's credential now; a session opened under another one ends."""
        ...

    def seats(self) -> int:
        """Active users created by apps (the billed seats the policies' ceiling bounds)."""
        ...


def _admin(user: User | None) -> User | None:
    return user if user is not None and user["active"] and OPERATOR_ROLE in user["roles"] \
        else None


class ServerOperators:
    """The embedded server's admins, checked against its password hashes."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server

    def sign_in(self, who: str, password: str) -> SignedIn | None:
        try:
            # The server's clock, as its REST login counts by: one budget, one window.
            matched = auth.check_record(self.server.db, who, password,
                                        self.server.clock.now())
        except auth.SignInUnavailable:
            raise StoreUnavailable from None
        if matched is None:
            return None
        # Read after the binding: a demotion between the two moved the binding already, so the
        # session opened here is refused at its first request.
        user = self.current(matched[0])
        credential = credential_of(matched[1])
        return SignedIn(user, credential) if user is not None and credential else None

    def current(self, user_id: str) -> User | None:
        try:
            return _admin(self.server.users_get(SYSTEM, user_id))
        except Exception:  # noqa: BLE001 - any failure ends the session
            return None

    def credential(self, user_id: str) -> str | None:
        try:
            return credential_of(auth.sign_in_binding(self.server.db, user_id))
        except Exception:  # noqa: BLE001 - any failure ends the session
            return None

    def seats(self) -> int:
        return self.server.users_count_active_app_created()


class WorkspaceOperators:
    """A Rocket.Chat workspace's admins: the workspace checks the password (`/api/v1/login`),
    the token it answers with is revoked at once (`/api/v1/logout`), and the roles are read
    with the service account, so the console never holds a workspace token of its own."""

    def __init__(self, remote: RemoteServer) -> None:
        self.remote = remote

    def sign_in(self, who: str, password: str) -> SignedIn | None:
        now = time.time()
        key = auth.failure_key(self.remote.client.base, who.strip().casefold()[:auth.MAX_NAME],
                               None)
        if FAILURES.blocked(key, now):
            raise auth.LoginBlocked(who)
        if not who.strip() or len(who) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL:
            FAILURES.failed(key, now)
            return None
        http = self.remote.client.http
        try:
            resp = http.post("/api/v1/login", json={"user": who.strip(), "password": password},
                             timeout=WORKSPACE_LOGIN_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise Unreachable(str(exc)) from None
        if resp.status_code >= 500:
            raise Unreachable(f"HTTP {resp.status_code}")
        data = _json(resp)
        session = data.get("data") if isinstance(data, dict) else None
        user_id = session.get("userId") if isinstance(session, dict) else None
        token = session.get("authToken") if isinstance(session, dict) else None
        if resp.status_code != 200 or not isinstance(user_id, str) or not isinstance(token, str):
            FAILURES.failed(key, now)
            return None
        try:  # the console keeps no workspace token: the one the login minted goes at once
            http.post("/api/v1/logout", headers={"X-User-Id": user_id, "X-Auth-Token": token},
                      timeout=WORKSPACE_LOGIN_TIMEOUT_S)
        except httpx.HTTPError:
            pass  # the token expires on the workspace's own schedule
        FAILURES.clear(key)
        user = self.current(user_id)
        return None if user is None else SignedIn(user, WORKSPACE_CREDENTIAL)

    def current(self, user_id: str) -> User | None:
        try:
            return _admin(self.remote.users_get(SYSTEM, user_id))
        except Exception:  # noqa: BLE001 - any failure (workspace down too) ends the session
            return None

    def credential(self, user_id: str) -> str | None:
        return WORKSPACE_CREDENTIAL  # not readable on a workspace (the module docstring)

    def seats(self) -> int:
        return self.remote.users_count_active_app_created()


def _json(resp: httpx.Response) -> object:
    try:
        return resp.json()
    except ValueError:
        return None
