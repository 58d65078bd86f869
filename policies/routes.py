"""REST routes no app may ever call through `rest.call`, whatever a policy lists (DESIGN rules
10 and 11): credentials, admin-class roles, acting as a visitor, deleting accounts.

The table lives here, beside the engine, so the linter can say a `rest_routes` entry naming one
can never allow (STK035) with the same words the gate refuses with (`host/gate/restbridge.py`).
Pure: no I/O.
"""
from __future__ import annotations

import re

# The REST API's path prefix; routes are compared below it.
API_PREFIX = "/api/v1/"

# (method or "*", path below /api/v1/) -> why no app may ever call it.
NEVER: dict[tuple[str, str], str] = {
    ("*", "login"): "logging in mints credentials",
    ("*", "logout"): "tokens are the operator's",
    ("*", "users.createToken"): "minting a token for a user is an admin key by another name",
    ("*", "users.generatePersonalAccessToken"): "minting credentials",
    ("*", "users.regeneratePersonalAccessToken"): "minting credentials",
    ("*", "users.getPersonalAccessTokens"): "reading credentials",
    ("*", "users.removePersonalAccessToken"): "tokens are the operator's",
    ("*", "users.delete"): "deleting accounts has no bridge action (deactivate instead)",
    ("*", "livechat/users/manager"): "livechat-manager is an admin-class role (DESIGN rule 10)",
    ("*", "livechat/users/manager/{id}"): "livechat-manager is an admin-class role",
    ("POST", "livechat/room"): "acts as a visitor; open rooms with livechat.create_room",
    ("POST", "livechat/message"): "acts as a visitor; no app may speak for one",
    ("GET", "livechat/room"): "acts as a visitor (opens a room with its widget token)",
    ("*", "livechat/visitor"):
        "acts as a visitor: registers one, or rewrites one by its widget token",
    ("*", "livechat/visitor/{token}"): "acts as a visitor (its widget token)",
    ("GET", "livechat/messages.history/{rid}"): "acts as a visitor (its widget token)",
    ("POST", "livechat/room.close"):
        "acts as a visitor (closes its room by its widget token): use livechat.close_room",
    ("POST", "livechat/inquiries.take"): "takes a room for an agent: use livechat.take_room",
    ("GET", "permissions.listAll"): "the workspace's permission table is the operator's",
    ("POST", "livechat/department/{id}/agents"):
        "moves many agents at once: use livechat.add_department_agent / remove_department_agent",
    ("GET", "chat.getMessage"): "reads any room's message by id: use messages.list",
}


def route_pattern(path: str) -> re.Pattern[str]:
    """A route path's pattern, `{name}` matching one segment; apply it with fullmatch ("$"
    under re.match would also pass a path with a final newline)."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


_NEVER_RE = tuple((meth, route_pattern(path), why) for (meth, path), why in NEVER.items())


def below_prefix(route: str) -> str:
    """`/api/v1/users.info` or `users.info` -> `users.info` (the path below /api/v1/)."""
    path = route.lstrip("/")
    prefix = API_PREFIX.lstrip("/")
    return path[len(prefix):] if path.startswith(prefix) else path


def never(method: str, route: str) -> str | None:
    """Why no app may call `method route`, or None."""
    path, m = below_prefix(route), method.upper()
    for meth, rx, why in _NEVER_RE:
        if meth in ("*", m) and rx.fullmatch(path):
            return why
    return None
