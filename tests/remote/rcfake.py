"""A fake Rocket.Chat for the remote adapter's tests, in process (httpx.MockTransport): each route
answers as Rocket.Chat's official OpenAPI definitions show (RocketChat/Rocket.Chat-Open-API),
where the stand-in is the embedded server and can only be as faithful as it was made. Used for
answers the stand-in once shaped differently (so the adapter's reading of the real shape is
checked, not the stand-in's)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from host.clock import SystemClock
from host.home import Home
from host.server.remote.client import RcClient
from host.server.remote.server import RemoteServer

Answer = tuple[int, dict[str, Any]]
Route = Callable[[dict[str, str], Any], Answer]

# users.info of a user that is not there (OpenAPI: users.info 400 "User not found"): no errorType.
USER_NOT_FOUND: Answer = (400, {"success": False, "error": "User not found."})


# Rocket.Chat's built-in roles (upsertPermissions' defaultRoles: `_id` is the name), what
# `roles.list` answers unless a test gives that route itself.
BUILT_IN_ROLES = ("admin", "moderator", "leader", "owner", "user", "bot", "app", "guest",
                  "anonymous", "livechat-agent", "livechat-manager")


def _built_in_roles(query: dict[str, str], body: Any) -> Answer:
    return 200, {"success": True, "roles": [{"_id": r, "name": r, "protected": True}
                                            for r in BUILT_IN_ROLES]}


class FakeWorkspace:
    """`routes`: "METHOD route-below-/api/v1/" -> fn(query, body) -> (status, json). Every request
    is kept in `log` as (method, route, query, body)."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = {"GET roles.list": _built_in_roles, **routes}
        self.log: list[tuple[str, str, dict[str, str], Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        route = request.url.path.removeprefix("/api/v1/")
        query = dict(request.url.params)
        body = json.loads(request.content) if request.content else None
        self.log.append((request.method, route, query, body))
        fn = self.routes.get(f"{request.method} {route}")
        status, out = fn(query, body) if fn else (404, {"success": False, "error": "no route"})
        return httpx.Response(status, json=out)

    def sent(self, method: str, route: str) -> list[tuple[dict[str, str], Any]]:
        return [(q, b) for m, r, q, b in self.log if m == method and r == route]


def fake_client(fake: FakeWorkspace) -> RcClient:
    """An RcClient that talks to `fake` (no retry waits)."""
    client = RcClient("http://rc.invalid", "svc-user", "svc-token", sleep=lambda _s: None)
    client.http.close()
    client.http = httpx.Client(base_url=client.base, transport=httpx.MockTransport(fake.handle))
    return client


def remote_on(fake: FakeWorkspace, root: Path) -> RemoteServer:
    """A RemoteServer for a fresh home whose client talks to `fake`."""
    return RemoteServer(fake_client(fake), Home(root).ensure().host_store, SystemClock())
