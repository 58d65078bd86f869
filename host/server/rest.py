"""The server's Rocket.Chat-style REST API: one route table, one dispatcher, two doors.

- `RestDispatcher(server).call(identity_user_id, method, route, query, body)` runs a route
  in-process with no socket (the host's `rest.call` bridge, as the operator-configured service
  identity; the app never sees that identity's credentials).
- `create_app(server)` is the starlette app `stockade serve` runs: it authenticates
  `X-User-Id` + `X-Auth-Token`, caps the body, and calls the same dispatcher.

Responses follow Rocket.Chat: `{"success": true, ...}`, or a refusal shaped by
`host/server/rest_errors.py` (400 with an `errorType`, 401 `{"status": "error", ...}`, 403).
Malformed input of any kind (a body nested too deep, a count that is no number) is a 400, never
a 500: a 500 is the server's own bug, logged with its traceback. A store that cannot serve now
(locked past the wait, restarting, full) is a 503 with `Retry-After` and one log line, nothing
written (`host/server/rest_unavailable.py`).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from host.server import personal_tokens
from host.server import rest_auth as a
from host.server import rest_livechat as lc
from host.server import rest_routes as h
from host.server.clientaddr import TrustedProxies
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound, ServerError, Unavailable
from host.server.gone import client_gone
from host.server.principals import Caller, Operator
from host.server.ratelimit import WIDGET_CALLS_PER_MIN, WIDGET_PREFIX, WidgetLimits, too_many
from host.server.rest_errors import rc_error
from host.server.rest_routes import ADMIN, LIVECHAT, MANAGE, Ctx, Handler
from host.server.rest_unavailable import retry_headers, store_failure, store_unavailable
from host.server.resthosts import HostAllowlist
from host.store import UnstorableText

log = logging.getLogger("stockade.server.rest")

# Request bodies above 64 KiB are refused unread: no route needs more (the largest legitimate
# body is a user with 50 custom fields of 1 KiB), and it bounds memory per request.
MAX_BODY_BYTES = 64 * 1024
API_PREFIX = "/api/v1/"
# Nesting depth of a request body. Guards: recursion in the JSON encoder and in every handler
# that walks a value; Rocket.Chat's deepest documented body (a visitor with custom fields in an
# object of objects) is 4 levels.
MAX_JSON_DEPTH = 16


def _depth(value: Any, level: int = 0) -> int:
    """How deep `value` nests, counted no further than one past MAX_JSON_DEPTH."""
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


@dataclass(frozen=True)
class RestRoute:
    """One route: `roles` None means any authenticated identity; `public` needs none."""

    method: str
    path: str  # below /api/v1/, may hold one {param}
    handler: Handler
    roles: frozenset[str] | None = None
    public: bool = False
    # The route writes a message, through the apps' pre-send hooks: it may hold its thread for
    # as long as they take (see HOOK_THREADS).
    pre_send: bool = False

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters if `path` matches this route, else None."""
        if "{" not in self.path:  # most routes: a string compare, no pattern at all
            return {} if path == self.path else None
        m = _pattern(self.path).fullmatch(path)  # fullmatch: "$" would pass a trailing newline
        return None if m is None else m.groupdict()


@functools.lru_cache(maxsize=256)
def _pattern(route: str) -> re.Pattern[str]:
    """A route's path as a pattern, its {param} parts named groups (compiled once: the
    dispatcher tries the routes in turn on every request)."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route)))


ROUTES: tuple[RestRoute, ...] = (
    RestRoute("GET", "info", h.info, public=True),
    RestRoute("POST", "login", a.login, public=True),
    RestRoute("POST", "logout", a.logout),
    RestRoute("GET", "me", h.me),
    RestRoute("GET", "users.list", a.users_list),
    RestRoute("POST", "users.generatePersonalAccessToken", a.generate_personal_token),
    RestRoute("POST", "users.createToken", a.create_token, ADMIN),
    RestRoute("POST", "users.delete", lc.users_delete, ADMIN),
    RestRoute("GET", "channels.list", lc.channels_list),
    RestRoute("GET", "channels.history", lc.channels_history, LIVECHAT),
    RestRoute("POST", "users.create", h.users_create, ADMIN),
    RestRoute("GET", "users.info", h.users_info),
    RestRoute("POST", "users.update", h.users_update, ADMIN),
    RestRoute("POST", "users.setActiveStatus", h.users_set_active, ADMIN),
    RestRoute("GET", "roles.list", h.roles_list),
    RestRoute("GET", "permissions.listAll", lc.permissions_list),
    RestRoute("POST", "roles.addUserToRole", h.roles_add, ADMIN),
    RestRoute("POST", "roles.removeUserFromRole", h.roles_remove, ADMIN),
    RestRoute("GET", "roles.getUsersInRole", lc.roles_users, ADMIN),
    RestRoute("GET", "livechat/users/agent/{id}", lc.agent_get, MANAGE),
    RestRoute("GET", "livechat/users/manager", lc.managers_list, MANAGE),
    RestRoute("POST", "livechat/users/manager", lc.manager_add, ADMIN),
    RestRoute("GET", "livechat/users/manager/{id}", lc.manager_get, MANAGE),
    RestRoute("DELETE", "livechat/users/manager/{id}", lc.manager_remove, ADMIN),
    RestRoute("GET", "livechat/inquiries.list", lc.inquiries_list, LIVECHAT),
    RestRoute("GET", "livechat/inquiries.getOne", lc.inquiries_get_one, LIVECHAT),
    RestRoute("POST", "livechat/inquiries.take", lc.inquiries_take, LIVECHAT),
    RestRoute("GET", "livechat/config/routing", lc.routing_config, LIVECHAT),
    RestRoute("GET", "rooms.info", lc.rooms_info, LIVECHAT),
    RestRoute("POST", "chat.postMessage", lc.chat_post, LIVECHAT, pre_send=True),
    # the widget's routes: the visitor's token is the credential
    RestRoute("GET", "livechat/visitor/{token}", lc.visitor_get, public=True),
    RestRoute("GET", "livechat/room", lc.visitor_room, public=True),
    RestRoute("GET", "livechat/messages.history/{rid}", lc.visitor_history, public=True),
    RestRoute("POST", "livechat/message", lc.visitor_message, public=True,
              pre_send=True),
    RestRoute("POST", "livechat/room.close", lc.visitor_close, public=True),
    RestRoute("GET", "livechat/users/agent", h.agents_list, MANAGE),
    RestRoute("POST", "livechat/users/agent", h.agent_add, MANAGE),
    RestRoute("DELETE", "livechat/users/agent/{id}", h.agent_remove, MANAGE),
    RestRoute("POST", "livechat/agent.status", h.agent_status, LIVECHAT),
    RestRoute("GET", "livechat/department", h.departments_list, LIVECHAT),
    RestRoute("POST", "livechat/department", h.department_create, MANAGE),
    RestRoute("GET", "livechat/rooms", h.rooms_list, LIVECHAT),
    RestRoute("GET", "livechat/room.info", h.room_info, LIVECHAT),
    RestRoute("POST", "livechat/room.take", h.room_take, LIVECHAT),
    RestRoute("POST", "livechat/room.transfer", h.room_transfer, LIVECHAT),
    RestRoute("POST", "livechat/room.forward", h.room_transfer, LIVECHAT),
    RestRoute("POST", "livechat/room.closeByUser", h.room_close, LIVECHAT),
    RestRoute("POST", "livechat/department/{id}/agents", lc.department_agents, MANAGE),
    RestRoute("GET", "livechat/department/{id}", lc.department_get, LIVECHAT),
    RestRoute("GET", "livechat/agents/{id}/departments", lc.agent_departments, LIVECHAT),
    RestRoute("POST", "livechat/visitor", h.visitor_save, public=True),
    RestRoute("GET", "livechat/visitors.info", h.visitor_info, LIVECHAT),
    RestRoute("POST", "livechat/room", h.visitor_room, LIVECHAT),
    RestRoute("POST", "chat.sendMessage", h.chat_send, pre_send=True),
    RestRoute("GET", "channels.messages", h.room_messages, LIVECHAT),
    RestRoute("GET", "chat.getMessage", h.message_get, LIVECHAT),
)


def _no_route(method: str, path: str) -> tuple[int, dict[str, Any]]:
    return 404, {"success": False, "error": f"no route {method.upper()} {API_PREFIX}{path}",
                 "errorType": "error-invalid-route"}


def _too_large(limit: int) -> tuple[int, dict[str, Any]]:
    return rc_error("invalid_argument", f"body larger than {limit} bytes", "", status=413)


def _json_media(content_type: str) -> bool:
    """Whether a Content-Type names JSON (`application/json`, any `+json` type; parameters such
    as `charset` aside)."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                            and media.endswith("+json"))


def _bad_body(message: str) -> tuple[int, dict[str, Any]]:
    return rc_error("invalid_argument", message, "")


def normalize_route(route: str) -> tuple[str, dict[str, str]]:
    """`/api/v1/users.info?userId=x`, `api/v1/users.info` or `users.info` -> path + query."""
    path, _, qs = route.partition("?")
    path = path.lstrip("/")
    if path.startswith(API_PREFIX.lstrip("/")):
        path = path[len(API_PREFIX) - 1:]
    return path, dict(parse_qsl(qs, keep_blank_values=False))


class RestDispatcher:
    """Runs a REST route without HTTP. The HTTP app and the `rest.call` bridge share it."""

    def __init__(self, server: EmbeddedServer, routes: tuple[RestRoute, ...] = ROUTES) -> None:
        self.server = server
        self.routes = routes

    def find(self, method: str, route: str) -> tuple[RestRoute, dict[str, str]] | None:
        """The route serving `method route` (route below /api/v1/) and its path parameters."""
        for r in self.routes:
            if r.method == method.upper():
                params = r.match(route)
                if params is not None:
                    return r, params
        return None

    def call(
        self,
        identity_user_id: str | None,
        method: str,
        route: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        *,
        caller: Caller | None = None,
        op_id: str | None = None,
        auth_token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Run one route as `identity_user_id` (already authenticated, or None for public
        routes). With `caller`, the server acts for that app (what it creates is stamped with
        the app, messages go out as its app user, privileged roles are refused) while the route's
        role check still applies to the identity; `op_id` then makes the write idempotent."""
        return self.guarded(method, route, lambda: self._call(
            identity_user_id, method, route, query, body, caller=caller, op_id=op_id,
            auth_token=auth_token))

    def guarded(self, method: str, route: str,
                work: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        """`work`'s answer, or the answer for what it raised: the one place a request's failure
        becomes a status (the HTTP door runs its token check inside it too). A store that
        cannot serve now is a 503 with one log line (`host.server.rest_unavailable`); anything
        else unexpected is a 500 logged with its traceback."""
        path = normalize_route(route)[0]
        committed = self.server.db.commits_here()
        try:
            return work()
        except ServerError as e:
            # Unavailable (a sign-in its store could not count) is a 503: retry later.
            return rc_error(e.code, e.message, path,
                            status=503 if isinstance(e, Unavailable) else None)
        except UnstorableText as e:
            if self.server.db.commits_here() == committed:
                # Bad input a shared store cannot hold or match (a NUL character), refused
                # before its statement ran: the caller's error, nothing of it written.
                return rc_error("invalid_argument", str(e), path)
            log.exception("REST %s %s failed part-way", method, path)
            return rc_error("internal", "internal server error", path, status=500)
        except Exception as e:
            why = store_unavailable(e)
            if why is not None:
                # A handler that committed a write before the one that failed did part of its
                # work: a 503 would promise a retry is safe and a refund is due; neither holds.
                return store_failure(why, e, method, path,
                                     wrote=self.server.db.commits_here() != committed)
            log.exception("REST %s %s failed", method, path)
            return rc_error("internal", "internal server error", path, status=500)

    def _call(
        self,
        identity_user_id: str | None,
        method: str,
        route: str,
        query: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        *,
        caller: Caller | None,
        op_id: str | None,
        auth_token: str | None,
    ) -> tuple[int, dict[str, Any]]:
        path, extra_query = normalize_route(route)
        found = self.find(method, path)
        if found is None:
            return _no_route(method, path)
        r, path_params = found
        if body is not None:
            if not isinstance(body, Mapping):
                return _bad_body("the body must be a JSON object")
            try:
                size = len(json.dumps(body, default=str))
            except (RecursionError, ValueError):
                return _bad_body(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
            if size > MAX_BODY_BYTES:
                return _too_large(MAX_BODY_BYTES)
            if _depth(body) > MAX_JSON_DEPTH:
                return _bad_body(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
        identity = None
        if not r.public:
            if identity_user_id is None:
                return rc_error("unauthorized", "", path)
            try:
                identity = self.server.users_get(Operator(identity_user_id), identity_user_id)
            except (NotFound, ServerError):
                return rc_error("unauthorized", "", path)
            if not identity["active"]:
                return rc_error("unauthorized", "", path)
            if r.roles is not None and not (r.roles & set(identity["roles"])):
                return rc_error("permission_denied",
                                f"{API_PREFIX}{path} needs one of the roles {sorted(r.roles)}",
                                path)
        ctx = Ctx(
            server=self.server, identity=identity,
            principal=caller if caller is not None else Operator(identity_user_id),
            op_id=op_id, query={**extra_query, **dict(query or {})}, body=dict(body or {}),
            path=path_params, auth_token=auth_token,
        )
        return 200, {**r.handler(ctx), "success": True}


def create_app(server: EmbeddedServer, *, max_body: int = MAX_BODY_BYTES,
               mounts: Sequence[BaseRoute] = (),
               widget_rate: int = WIDGET_CALLS_PER_MIN,
               trusted_proxies: Sequence[str] = (), hosts: Sequence[str] = ()) -> Starlette:
    """The starlette app serving `/api/v1/...` over HTTP (thin: auth, body cap, dispatch);
    `mounts` adds other apps beside it (`stockade serve` mounts the console). `widget_rate`:
    the widget's public routes' calls a minute per client, an IPv4 address or an IPv6 /64
    (`host.server.ratelimit`; 0: no limit). `trusted_proxies`: addresses or CIDR networks
    whose `X-Forwarded-For` names the client that limit counts (`host.server.clientaddr`; a
    bad one raises ValueError). `hosts`: the Host names it answers besides loopback's and every
    address (`host.server.resthosts`, DNS rebinding; a bad one raises ValueError); `mounts`
    keep their own."""
    dispatcher = RestDispatcher(server)
    hook_slots = asyncio.BoundedSemaphore(HOOK_THREADS)  # bound to the loop at first use
    widget = WidgetLimits(widget_rate)
    proxies = TrustedProxies(trusted_proxies)
    allowlist = HostAllowlist(hosts)

    def foreign(request: Request) -> JSONResponse | None:
        """The refusal of a Host name this API does not serve as (DNS rebinding), or None. Two
        Host headers are refused: a proxy may read the other one."""
        named = request.headers.getlist("host")
        if len(named) <= 1 and allowlist.allows(named[0] if named else None):
            return None
        return _json(400, allowlist.refusal(", ".join(named)))

    async def endpoint(request: Request) -> JSONResponse:
        refused = foreign(request)  # before anything else: no limiter, body or route runs
        if refused is not None:
            return refused
        route = request.path_params["path"]
        # The limiter reads the path the dispatcher will route (`//livechat/visitor` and
        # `api/v1/livechat/visitor` are served as `livechat/visitor`): judged as sent, a
        # respelled path was never counted, and one client registered visitors without limit.
        name = normalize_route(route)[0] if widget.calls is not None else ""
        if name.startswith(WIDGET_PREFIX):
            # Before the body is read: a flood costs the server as little as it can.
            found = dispatcher.find(request.method, name)
            # The limiter's key alone: the request's client stays the TCP peer (the console's
            # peer check reads that, never a forwarded header: host.server.clientaddr).
            client = proxies.client(request.client.host if request.client else "",
                                    request.headers.getlist("x-forwarded-for"))
            over = widget.refused(request.method, name, found is not None and found[0].public,
                                  client)
            if over is not None:
                status, payload, headers = too_many(over)
                return JSONResponse(payload, status_code=status, headers=headers)
        declared = request.headers.get("content-length")
        # isascii: str.isdigit() is true for "²", which int() refuses.
        if declared is not None and (not (declared.isascii() and declared.isdigit())
                                     or len(declared) > 12 or int(declared) > max_body):
            return _json(*_too_large(max_body))
        raw = bytearray()  # not bytes: 64 Ki one-byte chunks would copy 2 GiB
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body:  # chunked bodies have no content-length: count as we go
                return _json(*_too_large(max_body))
        body: Any = None
        if raw.strip():
            if not _json_media(request.headers.get("content-type", "")):
                # A page on any site can POST text/plain (or a form) to this loopback port
                # without asking the browser first; only JSON needs the preflight this API never
                # answers. Guards sign-in attempts (the budget that locks an account) and the
                # anonymous widget routes from another site's page the operator visits.
                return _json(*_bad_body("send the body as Content-Type: application/json"))
            try:
                body = json.loads(raw)
                # Python's parser reads "\ud800" (and the bytes ED A0 80) as a lone surrogate,
                # which no UTF-8 store can hold: refused here as bad input (UnicodeEncodeError
                # is a ValueError). Guards every write below from failing as a 500 with a
                # traceback in the log, for any anonymous widget client that sends one.
                json.dumps(body, ensure_ascii=False).encode("utf-8")
            except (ValueError, RecursionError):
                return _json(*_bad_body(
                    "the body is not valid JSON (nested too deep, or text that is not UTF-8)"))
            if not isinstance(body, dict):
                return _json(*_bad_body("the body must be a JSON object"))
        # Every message route is a POST: the other methods skip the route lookup.
        found = (dispatcher.find("POST", normalize_route(route)[0])
                 if request.method == "POST" else None)
        slots = (hook_slots if found is not None and found[0].pre_send and server.pre_send_hooked
                 else None)
        if slots is not None:
            try:  # waiting here holds no thread: a burst waits its turn, a flood is refused
                await asyncio.wait_for(slots.acquire(), HOOK_SLOT_WAIT_S)
            except TimeoutError:
                return _json(*rc_error("quota_exceeded", HOOKS_BUSY, route, status=429))
        user_ids = request.headers.getlist("x-user-id")
        tokens = request.headers.getlist("x-auth-token")
        user_id = user_ids[0] if user_ids else None
        token = tokens[0] if tokens else None
        # A credential header sent twice is no credential (Rocket.Chat's Node joins the copies
        # into one value, which names no token): reading the first and ignoring the second
        # checked another token than a proxy or log reading the last one saw.
        repeated = len(user_ids) > 1 or len(tokens) > 1

        def authenticated() -> tuple[int, dict[str, Any]]:
            identity = None
            if repeated:
                return rc_error("unauthorized", "", route)
            if user_id is not None or token is not None:
                identity = personal_tokens.verify(server.db, user_id, token,
                                                  server.clock.now())
                if identity is None:
                    return rc_error("unauthorized", "", route)
            return dispatcher._call(identity, request.method, route,
                                    dict(request.query_params), body, caller=None, op_id=None,
                                    auth_token=token)

        def run() -> tuple[int, dict[str, Any]]:
            # The token's look-up reads the store too: inside the same guard as the route.
            return dispatcher.guarded(request.method, route, authenticated)

        loop = asyncio.get_running_loop()
        job = _rest_pool().submit(run)
        if slots is not None:
            # Freed when the thread is, not when this request ends: a client that hangs up
            # leaves its message in the hook, and its thread taken, until the hook answers.
            job.add_done_callback(lambda _job: _release_soon(loop, slots))
        status, payload = await asyncio.wrap_future(job)
        return _json(status, payload)

    async def api_info(request: Request) -> JSONResponse:
        """GET /api/info (outside /api/v1, public): the version, as Rocket.Chat answers it."""
        return foreign(request) or _json(200, {"version": h.SERVER_VERSION, "success": True})

    async def no_route(request: Request, exc: Exception) -> JSONResponse:
        """What starlette's router cannot match (a path with a newline, another method): the
        same JSON 404 as an unknown route, never a plain-text page."""
        return foreign(request) or _json(404, {
            "success": False, "error": f"no route {request.method[:16]} "
            f"{request.url.path[:200]!r}", "errorType": "error-invalid-route"})

    return Starlette(routes=[
        Route("/api/info", api_info, methods=["GET"]),
        Route("/api/v1/{path:path}", endpoint, methods=["GET", "POST", "DELETE"]),
        *mounts,
    ], exception_handlers={404: no_route, 405: no_route, ClientDisconnect: client_gone})


# Threads that run REST handlers (the handlers block on SQLite), shared by every app this
# process serves. A plain executor, not anyio's `to_thread`: its limiter and cancel scope cost
# ~10-15 % of the server's CPU per request in an A/B on this machine (docs/BENCH.md). Bounds
# the handlers running at once; the rest wait in the executor's queue.
REST_THREADS = 16
# Of those, how many a message route may hold while the apps' pre-send hooks judge its message
# (up to their deadlines, behind every message queued for the same hook: one app's child judges
# one at a time). Past it a message is refused at once with 429, as Rocket.Chat's rate limiter
# answers. Guards the rest of the API: a flood of messages from anonymous widget clients
# against a slow hook held every thread, and a plain read, a sign-in, waited behind it (~9 s for
# 60 messages against a 0.2 s hook, tests/server/test_server_rest_hook_flood.py).
HOOK_THREADS = REST_THREADS // 2
# How long a message waits for one of them before that 429 (on the event loop, holding no
# thread): a burst of ordinary traffic waits its turn instead of being refused.
HOOK_SLOT_WAIT_S = 1.0
HOOKS_BUSY = ("too many messages are waiting for the apps' pre-send hooks; "
              "send this one again in a moment")
_POOL: list[ThreadPoolExecutor] = []


def _release_soon(loop: asyncio.AbstractEventLoop, slots: asyncio.BoundedSemaphore) -> None:
    """Free a message route's slot from the worker thread that held it (the semaphore is the
    event loop's); nothing to free once the loop is closed (the server stopped)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(slots.release)


_POOL_LOCK = threading.Lock()


def _rest_pool() -> ThreadPoolExecutor:
    if not _POOL:
        with _POOL_LOCK:
            if not _POOL:
                _POOL.append(ThreadPoolExecutor(REST_THREADS, thread_name_prefix="stockade-rest"))
    return _POOL[0]


def _json(status: int, payload: dict[str, Any]) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers=retry_headers(status))
