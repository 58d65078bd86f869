"""How the REST bridge answers a mapped route: the bridge action's result rendered as the
Rocket.Chat route renders it (`host/server/rest_shapes.py`).

What each route amounts to (the table of mapped routes, their translation into bridge actions,
the steps before a decision) is `policies/restmap.py`, beside the engine, so the gate, `stockade
can-i`, the disclosure and the app author's harness read one table; this module re-exports it
for the host's callers and adds the one thing only the host does with a route: answer it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from host.server import rest_shapes as rs
from policies.restmap import (
    API_PREFIX,
    MAPPED,
    NEVER,
    ROLE_FIELDS,
    ByUsername,
    Mapped,
    RouteRefused,
    find,
    never,
    route_actions,
    split_route,
)

__all__ = ["API_PREFIX", "MAPPED", "NEVER", "ROLE_FIELDS", "ByUsername", "Mapped", "RouteRefused",
           "find", "never", "render", "route_actions", "split_route"]

Render = Callable[[Any], dict[str, Any]]


def _department_body(d: Any) -> dict[str, Any]:
    """As the server's route answers: the department, its agents beside it (the bridge gives
    ids only: no username, which the app reads with users.get)."""
    return {"department": rs.department(d),
            "agents": [rs.department_agent(d["id"], a, None, d["enabled"]) for a in d["agents"]]}


def _user_body(u: Any) -> dict[str, Any]:
    return {"user": rs.user(u)}


def _active_body(u: Any) -> dict[str, Any]:
    return {"user": {"_id": u["id"], "active": u["active"]}}


def _role_body(_u: Any) -> dict[str, Any]:
    return {}


def _rooms_body(rooms: Any) -> dict[str, Any]:
    out = [rs.room(r) for r in rooms]
    return {"rooms": out, "count": len(out), "offset": 0, "total": len(out)}


def _departments_body(deps: Any) -> dict[str, Any]:
    out = [rs.department(d) for d in deps]
    return {"departments": out, "count": len(out), "offset": 0, "total": len(out)}


def _messages_body(msgs: Any) -> dict[str, Any]:
    out = [rs.message(m) for m in reversed(msgs)]  # Rocket.Chat lists newest first
    return {"messages": out, "count": len(out), "offset": 0, "total": len(out)}


def _close_body(r: Any) -> dict[str, Any]:
    return {"rid": r["id"], "comment": r["close_comment"]}


def _room_body(r: Any) -> dict[str, Any]:
    return {"room": rs.room(r)}


def _message_body(m: Any) -> dict[str, Any]:
    return {"message": rs.message(m)}


# A mapped route's label -> how its answer's body is rendered.
RENDER: dict[str, Render] = {
    "POST /api/v1/users.create": _user_body,
    "GET /api/v1/users.info": _user_body,
    "POST /api/v1/users.update": _user_body,
    "POST /api/v1/users.setActiveStatus": _active_body,
    "POST /api/v1/roles.addUserToRole": _role_body,
    "POST /api/v1/roles.removeUserFromRole": _role_body,
    "POST /api/v1/livechat/users/agent": lambda a: {"user": rs.agent(a)},
    "DELETE /api/v1/livechat/users/agent/{id}": lambda _a: {},
    "POST /api/v1/livechat/agent.status": lambda a: {"status": a["status"]},
    "GET /api/v1/livechat/rooms": _rooms_body,
    "GET /api/v1/livechat/room.info": _room_body,
    "GET /api/v1/rooms.info": _room_body,
    "POST /api/v1/livechat/room.take": _room_body,
    "POST /api/v1/livechat/room.transfer": _room_body,
    "POST /api/v1/livechat/room.forward": _room_body,
    "POST /api/v1/livechat/room.closeByUser": _close_body,
    "GET /api/v1/livechat/department": _departments_body,
    "GET /api/v1/livechat/department/{id}": _department_body,
    "GET /api/v1/livechat/visitors.info": lambda v: {"visitor": rs.visitor(v)},
    "POST /api/v1/chat.sendMessage": _message_body,
    "POST /api/v1/chat.postMessage": _message_body,
    "GET /api/v1/channels.messages": _messages_body,
    "GET /api/v1/channels.history": _messages_body,
}
# Every mapped route is answered, and nothing else is: checked when the host loads.
if set(RENDER) != {m.label for m in MAPPED}:
    raise RuntimeError("host/gate/rest_routes.py RENDER does not cover policies.restmap.MAPPED")


def render(mapped: Mapped, result: Any) -> dict[str, Any]:
    """The body of the route's answer for the bridge action's `result` (without `success`)."""
    return RENDER[mapped.label](result)
