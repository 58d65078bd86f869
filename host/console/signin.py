"""Who a console request is, and what it may post: sign-in and sign-out, each request's session
check (`SignIn.session_of`), and the same-origin, CSRF-carrying form every change needs.

A session is used only from the local account that signed it in (`host.console.peer`), only
while its user is still an operator under the credential it signed in with
(`host.console.operators`), and a form is read only when the request is same-origin, declares a
small length and carries the session's CSRF token (`host.console.origins`). The pages
themselves are `host.console.app`'s.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from host.apps.manifest import MAX_SETTINGS
from host.console.operators import Operators, Unreachable
from host.console.origins import same_origin, source_origin
from host.console.peer import client_uid
from host.console.sessions import COOKIE, Session, Sessions
from host.server import auth

log = logging.getLogger("stockade.console")
# Size of a (non-upload) form post. Guards: memory per request; the largest console form (an
# app's settings) is a few KiB.
MAX_FORM_BYTES = 64 * 1024
# Fields of a (non-upload) form post. Guards: parsing work per request; the largest console
# form is an app's settings, two fields a setting (its value, the value the page showed) and
# the CSRF token.
MAX_FORM_FIELDS = 2 * MAX_SETTINGS + 8


def csrf_ok(sent: object, s: Session) -> bool:
    """The posted token is the session's. Compared as bytes: `compare_digest` raises on a str
    with non-ASCII characters, and a forged token must be a 403, never a 500."""
    if not isinstance(sent, str):
        return False
    return secrets.compare_digest(sent.encode("utf-8", "surrogatepass"), s.csrf.encode())


def declared_length(request: Request) -> int | None:
    """The body length the request declares, or None when it declares none or no plain number.
    Read by length first: `int()` raises on more than 4300 digits, and the HTTP parser passes
    on thousands of leading zeros (a 500 and a traceback per request, before any session)."""
    declared = request.headers.get("content-length", "")
    if not (0 < len(declared) <= 18 and declared.isascii() and declared.isdigit()):
        return None
    return int(declared)


def refused() -> Response:
    return Response("refused: a console change must come from a console page (CSRF)",
                    status_code=403, media_type="text/plain")


def peer_uid(request: Request) -> int | None:
    """The local account holding the client end of this request's connection."""
    return client_uid(request.scope.get("client"), request.scope.get("server"))


class SignIn:
    """One console's sign-in, sign-out and per-request session check. `page` renders a template
    (the login page's answers); `threads` is the console's limiter (`faults.console_threads`)."""

    def __init__(self, operators: Operators, sessions: Sessions, origins: Sequence[str],
                 threads: anyio.CapacityLimiter,
                 page: Callable[..., Response]) -> None:
        self.operators, self.sessions, self.origins = operators, sessions, origins
        self.threads, self.page = threads, page

    async def session_of(self, request: Request) -> Session | None:
        sid = request.cookies.get(COOKIE)
        s = self.sessions.get(sid)
        if s is None:
            return None
        # Used from the local account that signed it in, or not at all: the cookie reaches
        # every loopback port the browser visits (`host.console.peer`). Refused as signed
        # out, and the session is kept: whoever replays a stolen cookie must not be able to
        # sign the operator out with it either.
        uid = peer_uid(request)
        if uid != s.uid:
            log.warning("console: %s's session (signed in from uid %d) refused to a request "
                        "from %s; its cookie was used by another local account, or from a "
                        "connection whose owner cannot be read", s.username, s.uid,
                        "an unknown account" if uid is None else f"uid {uid}")
            return None
        # Off the event loop, on the console's own threads: against a workspace the check is
        # an HTTP round trip (up to the client's deadline, `host.server.remote.client`), and on
        # the embedded server a store read; on the loop, a slow workspace held every other
        # request of the front (its webhook receiver, other operators' pages) as long.
        still = await anyio.to_thread.run_sync(self._still_operator, sid, s,
                                               limiter=self.threads)
        if not still:
            return None
        self.sessions.used(s)  # only now: a refused request is no use of the session
        return s

    def _still_operator(self, sid: str | None, s: Session) -> bool:
        """Still an active admin, under the credential it signed in with? If not, the session
        is closed, not hidden: a re-promotion or the old password back revives nothing. The
        credential holds the server's sign-in epoch, which a demotion or a deactivation moves
        for good (`operators` docstring), so a session that made no request while its user
        was out is still refused here. A user out of the operators loses every session at
        once (against a workspace, whose users carry no epoch, that is what narrows it)."""
        if self.operators.current(s.user_id) is None:
            self.sessions.close_user(s.user_id)
            return False
        if self.operators.credential(s.user_id) != s.credential:
            self.sessions.close(sid)
            return False
        return True

    async def form_of(self, request: Request, s: Session | None) -> dict[str, str] | None:
        """The posted form when the request is same-origin and carries the session's CSRF
        token (or, with no session, is the sign-in form); None refuses it."""
        if not same_origin(request, self.origins):
            return None
        declared = declared_length(request)
        if declared is None or declared > MAX_FORM_BYTES:
            return None  # a console form is small; a browser always says how long it is
        form = {k: str(v) for k, v in
                (await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)).items()}
        if s is not None and not csrf_ok(form.get("csrf"), s):
            return None
        return form

    async def form(self, request: Request, s: Session) -> dict[str, str] | Response:
        """A guarded change's form (`form_of`), or its refusal."""
        got = await self.form_of(request, s)
        return refused() if got is None else got

    async def login_page(self, request: Request) -> Response:
        return self.page(request, "login.html")

    async def login(self, request: Request) -> Response:
        page, origins = self.page, self.origins
        form = await self.form_of(request, None)
        if form is None:
            return refused()
        who, password = form.get("username", ""), form.get("password", "")
        try:
            # a thread: against a workspace the check is an HTTP round trip
            signed = await anyio.to_thread.run_sync(self.operators.sign_in, who, password,
                                                    limiter=self.threads)
        except auth.LoginBlocked:
            return page(request, "login.html", 429, error="Too many failed sign-ins for this "
                        "name; try again in a few minutes.")
        except Unreachable as e:  # the workspace, or the embedded server's store, did not answer
            return page(request, "login.html", 503, error=e.words)
        if signed is None:
            return page(request, "login.html", 401, error="Wrong name or password, or not an "
                        "operator of this server.")
        uid = peer_uid(request)
        if uid is None:  # fail closed: a session is never bound to nobody
            log.warning("console: %s's sign-in refused: the local account of the connection "
                        "from %s cannot be read", signed.user["username"], request.client)
            return page(request, "login.html", 403, error="The console cannot tell which local "
                        "account this connection comes from (it serves loopback connections "
                        "of this machine's network namespace); sign-in refused.")
        sid = self.sessions.open(signed.user["id"], signed.user["username"], signed.credential,
                                 uid)
        resp = RedirectResponse("/console/apps", status_code=303)
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/console",
                        secure=request.url.scheme == "https" or (
                            source_origin(request) in origins
                            and str(source_origin(request)).startswith("https://")))
        return resp

    async def logout(self, request: Request) -> Response:
        s = await self.session_of(request)
        if s is not None and await self.form_of(request, s) is None:
            return refused()
        if s is not None:  # only a session this request may use: never by a stolen cookie
            self.sessions.close(request.cookies.get(COOKIE))
        resp = RedirectResponse("/console/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    def signed_in(self, handler: Callable[[Request, Session], Awaitable[Response]]
                  ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            s = await self.session_of(request)
            if s is None:
                return RedirectResponse("/console/login", status_code=303)
            return await handler(request, s)
        return run

