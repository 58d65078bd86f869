"""What each REST route an app may call through `rest.call` amounts to: the one table of routes
with a bridge action, and the steps that read it before any decision (DESIGN rule 11).

A REST route that does what a bridge action does is that bridge action. Each `Mapped` row turns
the route's parameters into the bridge action's arguments, which are then decided by that
action's rules (its permission, declared roles, own-users facts, argument rules, guardrails,
quotas, seat ceiling). A translation is strict: a parameter the bridge action cannot express is
refused, never dropped, so no REST field reaches the server around the action's rules. `NEVER`
rows (`policies/routes.py`) are refused whatever a policy lists. A route in neither list has no
bridge action: the engine allows it only under a permit that lists the route and the body fields
it may carry (`rest_fields`).

Pure data and functions (no I/O), here beside the engine so that every reader decides a route
the same way: the gate's REST bridge (`host/gate/restbridge.py`, which renders a mapped route's
answer with `host/gate/rest_routes.py`), `stockade can-i`, the disclosure, and the app author's
harness under `use_policy` (`sandbox/harness_rest.py`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.routes import API_PREFIX, NEVER, below_prefix, never, route_pattern

__all__ = ["API_PREFIX", "MAPPED", "NEVER", "READS", "ROLE_FIELDS", "ByUsername", "Mapped",
           "Refusal", "RoutePlan", "RouteRefused", "find", "never", "plan_route", "route_actions",
           "route_label", "route_reads", "split_route", "translate_route"]


@dataclass(frozen=True)
class ByUsername:
    """A user named by username: the bridge resolves it with a `users.get_by_username` bridge
    call (permission `users.read`, decided and audited like any other) before deciding."""

    username: str


class RouteRefused(ValueError):
    """The route's parameters cannot be expressed as the bridge action (refused, audited)."""


# (params, path params, the app's own user id) -> (bridge action, bridge arguments)
Translate = Callable[[Mapping[str, Any], Mapping[str, str], str], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Mapped:
    """A REST route that amounts to one of `actions` (which one may depend on the parameters)."""

    method: str
    path: str  # below /api/v1/, may hold one {param}
    actions: tuple[str, ...]
    translate: Translate

    @property
    def label(self) -> str:
        return f"{self.method} {API_PREFIX}{self.path}"


def _str(params: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    v = params.get(name)
    if v is None:
        if required:
            raise RouteRefused(f"field {name!r} is required")
        return None
    if not isinstance(v, str) or not v:
        raise RouteRefused(f"field {name!r} must be a non-empty string")
    return v


def _only(params: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RouteRefused(f"field(s) {', '.join(unknown)[:200]} have no meaning for the bridge "
                           f"action this route amounts to; allowed: {', '.join(sorted(allowed))}")


def _user(params: Mapping[str, Any]) -> str | ByUsername:
    uid, uname = params.get("userId"), params.get("username")
    if uid is not None and uname is not None:
        raise RouteRefused("give userId or username, not both")
    if isinstance(uid, str) and uid:
        return uid
    if isinstance(uname, str) and uname:
        return ByUsername(uname)
    raise RouteRefused("give userId or username")


# Rocket.Chat users.create fields that do nothing on this server (no passwords, no e-mail):
# accepted and dropped, since standard clients always send them. `active` is not among them.
_INERT_CREATE = frozenset({"password", "verified", "joinDefaultChannels",
                           "requirePasswordChange", "sendWelcomeEmail"})


def _users_create(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                  ) -> tuple[str, dict[str, Any]]:
    _only(p, {"username", "name", "email", "roles", "customFields", "type"} | _INERT_CREATE)
    args: dict[str, Any] = {"username": p.get("username"), "name": p.get("name"),
                            "type": p.get("type", "user")}
    for src, dst in (("email", "email"), ("roles", "roles"), ("customFields", "custom_fields")):
        if p.get(src) is not None:
            args[dst] = p[src]
    return "users.create", args


def _users_info(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                ) -> tuple[str, dict[str, Any]]:
    _only(p, {"userId", "username"})
    who = _user(p)
    if isinstance(who, ByUsername):
        return "users.get_by_username", {"username": who.username}
    return "users.get", {"user_id": who}


def _users_update(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                  ) -> tuple[str, dict[str, Any]]:
    _only(p, {"userId", "data"})
    uid = _str(p, "userId")
    data = p.get("data")
    if not isinstance(data, Mapping) or len(data) != 1:
        raise RouteRefused("data must hold exactly one of customFields or active=false "
                           "(each is its own bridge action, decided on its own)")
    if "customFields" in data:
        return "users.set_custom_fields", {"user_id": uid, "fields": data["customFields"]}
    if data.get("active") is False:
        return "users.deactivate", {"user_id": uid}
    raise RouteRefused("data may set customFields or active=false; reactivating a user has "
                       "no bridge action and is refused")


def _set_active(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                ) -> tuple[str, dict[str, Any]]:
    _only(p, {"userId", "activeStatus"})
    if p.get("activeStatus") is not False:
        raise RouteRefused("activeStatus must be false: reactivating a user has no bridge "
                           "action and is refused")
    return "users.deactivate", {"user_id": _str(p, "userId")}


def _role(action: str) -> Translate:
    def translate(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                  ) -> tuple[str, dict[str, Any]]:
        _only(p, {"roleName", "roleId", "userId", "username"})
        names = [p[k] for k in ("roleName", "roleId") if p.get(k) is not None]
        if len(names) != 1:
            raise RouteRefused("give exactly one of roleName or roleId")
        return action, {"user_id": _user(p), "role": names[0]}
    return translate


def _agent_add(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
               ) -> tuple[str, dict[str, Any]]:
    _only(p, {"userId", "username"})
    return "livechat.add_agent", {"user_id": _user(p)}


def _agent_remove(p: Mapping[str, Any], path: Mapping[str, str], _me: str
                  ) -> tuple[str, dict[str, Any]]:
    _only(p, set())
    return "livechat.remove_agent", {"user_id": path["id"]}


def _agent_status(p: Mapping[str, Any], _path: Mapping[str, str], me: str
                  ) -> tuple[str, dict[str, Any]]:
    _only(p, {"status", "agentId"})
    return "livechat.set_agent_status", {
        "user_id": _str(p, "agentId", required=False) or me, "status": p.get("status")}


def _rooms_list(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                ) -> tuple[str, dict[str, Any]]:
    _only(p, {"open"})
    raw = p.get("open")
    if raw is None:
        return "livechat.list_rooms", {}
    if raw not in ("true", "false", True, False):
        raise RouteRefused("open must be true or false")
    return "livechat.list_rooms", {"open": raw in ("true", True)}


def _room_info(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
               ) -> tuple[str, dict[str, Any]]:
    _only(p, {"roomId"})
    return "livechat.get_room", {"room_id": _str(p, "roomId")}


def _room_take(p: Mapping[str, Any], _path: Mapping[str, str], me: str
               ) -> tuple[str, dict[str, Any]]:
    _only(p, {"roomId", "userId"})
    return "livechat.take_room", {"room_id": _str(p, "roomId"),
                                  "agent_id": _str(p, "userId", required=False) or me}


def _room_transfer(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                   ) -> tuple[str, dict[str, Any]]:
    _only(p, {"roomId", "departmentId", "userId"})
    args: dict[str, Any] = {"room_id": _str(p, "roomId")}
    if p.get("departmentId") is not None:
        args["department"] = p["departmentId"]
    if p.get("userId") is not None:
        args["agent_id"] = p["userId"]
    return "livechat.transfer_room", args


def _room_close(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                ) -> tuple[str, dict[str, Any]]:
    _only(p, {"rid", "roomId", "comment"})
    rid = _str(p, "rid", required=False) or _str(p, "roomId")
    args: dict[str, Any] = {"room_id": rid}
    if p.get("comment") is not None:
        args["comment"] = p["comment"]
    return "livechat.close_room", args


def _department(p: Mapping[str, Any], path: Mapping[str, str], _me: str
                ) -> tuple[str, dict[str, Any]]:
    _only(p, set())
    return "livechat.get_department", {"department": path["id"]}


def _departments(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                 ) -> tuple[str, dict[str, Any]]:
    _only(p, set())
    return "livechat.list_departments", {}


def _visitor_info(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
                  ) -> tuple[str, dict[str, Any]]:
    _only(p, {"visitorId"})
    return "livechat.get_visitor", {"visitor_id": _str(p, "visitorId")}


def _chat_send(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
               ) -> tuple[str, dict[str, Any]]:
    _only(p, {"message"})
    msg = p.get("message")
    if not isinstance(msg, Mapping):
        raise RouteRefused("message must be an object {rid, msg}")
    _only(msg, {"rid", "msg"})
    return "messages.send", {"room_id": _str(msg, "rid"), "text": msg.get("msg")}


def _chat_post(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
               ) -> tuple[str, dict[str, Any]]:
    _only(p, {"roomId", "text", "alias", "avatar"})
    if "alias" in p or "avatar" in p:
        # Rocket.Chat's per-message display: held to livechat.relay_message's rules (only in
        # a room the app's user serves, under livechat.agent-display), never plain sending.
        return "livechat.relay_message", {
            "room_id": _str(p, "roomId"), "text": p.get("text"), "alias": p.get("alias"),
            "avatar_url": p.get("avatar"),
        }
    return "messages.send", {"room_id": _str(p, "roomId"), "text": p.get("text")}


def _messages(p: Mapping[str, Any], _path: Mapping[str, str], _me: str
              ) -> tuple[str, dict[str, Any]]:
    _only(p, {"roomId", "count"})
    args: dict[str, Any] = {"room_id": _str(p, "roomId")}
    raw = p.get("count")
    if raw is not None:
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 6:
            args["limit"] = int(raw)
        elif isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 10**6:
            args["limit"] = raw
        else:
            raise RouteRefused("count must be a positive integer")
    return "messages.list", args


MAPPED: tuple[Mapped, ...] = (
    Mapped("POST", "users.create", ("users.create",), _users_create),
    Mapped("GET", "users.info", ("users.get", "users.get_by_username"), _users_info),
    Mapped("POST", "users.update", ("users.set_custom_fields", "users.deactivate"), _users_update),
    Mapped("POST", "users.setActiveStatus", ("users.deactivate",), _set_active),
    Mapped("POST", "roles.addUserToRole", ("roles.assign",), _role("roles.assign")),
    Mapped("POST", "roles.removeUserFromRole", ("roles.remove",), _role("roles.remove")),
    Mapped("POST", "livechat/users/agent", ("livechat.add_agent",), _agent_add),
    Mapped("DELETE", "livechat/users/agent/{id}", ("livechat.remove_agent",), _agent_remove),
    Mapped("POST", "livechat/agent.status", ("livechat.set_agent_status",), _agent_status),
    Mapped("GET", "livechat/rooms", ("livechat.list_rooms",), _rooms_list),
    Mapped("GET", "livechat/room.info", ("livechat.get_room",), _room_info),
    Mapped("GET", "rooms.info", ("livechat.get_room",), _room_info),
    Mapped("POST", "livechat/room.take", ("livechat.take_room",), _room_take),
    Mapped("POST", "livechat/room.transfer", ("livechat.transfer_room",), _room_transfer),
    Mapped("POST", "livechat/room.forward", ("livechat.transfer_room",), _room_transfer),
    Mapped("POST", "livechat/room.closeByUser", ("livechat.close_room",), _room_close),
    Mapped("GET", "livechat/department", ("livechat.list_departments",), _departments),
    Mapped("GET", "livechat/department/{id}", ("livechat.get_department",), _department),
    Mapped("GET", "livechat/visitors.info", ("livechat.get_visitor",), _visitor_info),
    Mapped("POST", "chat.sendMessage", ("messages.send",), _chat_send),
    Mapped("POST", "chat.postMessage", ("messages.send", "livechat.relay_message"), _chat_post),
    Mapped("GET", "channels.messages", ("messages.list",), _messages),
    Mapped("GET", "channels.history", ("messages.list",), _messages),
)


# Routes with no bridge action that read what a bridge permission guards, and the permissions
# the app must hold for them too (beside `server.rest` and a permit listing the route), as the
# bridge's own reads of the same things need them (DESIGN rule 11). Guards: an app consented
# `server.rest` but not `users.read` listed every user's name and roles through `users.list`
# while `users.info` of the same user was refused for lacking `users.read`; an agent's record
# is a user's (its name), the queue and an agent's departments are livechat's (`livechat.read`).
READS: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "users.list"): ("users.read",),
    ("GET", "roles.getUsersInRole"): ("users.read",),
    ("GET", "livechat/users/agent"): ("users.read",),
    ("GET", "livechat/users/agent/{id}"): ("users.read",),
    ("GET", "livechat/agents/{id}/departments"): ("livechat.read", "users.read"),
    ("GET", "livechat/inquiries.list"): ("livechat.read",),
    ("GET", "livechat/inquiries.getOne"): ("livechat.read",),
}
_READS_RE = tuple((meth, route_pattern(path), perms) for (meth, path), perms in READS.items())


def route_reads(method: object, route: object) -> tuple[str, ...]:
    """The permissions `method route` reads under (`READS`), () for any other route. Pure:
    the gate's grant step asks it (`policies.grants`), and with it `stockade can-i` and the
    app author's harness."""
    if not isinstance(method, str) or not isinstance(route, str):
        return ()
    path, m = split_route(route), method.upper()
    for meth, rx, perms in _READS_RE:
        if meth == m and rx.fullmatch(path):
            return perms
    return ()


# Body or query fields that name roles: an unmapped route carrying one could grant a role around
# the roles.assign rules (rule 10), so it is refused whatever the policy lists.
ROLE_FIELDS = frozenset({"roles", "role", "roleName", "roleId"})

_MAPPED_RE = tuple((m, route_pattern(m.path)) for m in MAPPED)
split_route = below_prefix


def find(method: str, route: str) -> tuple[Mapped, dict[str, str]] | None:
    """The mapped route serving `method route` and its path parameters, or None."""
    path, m = split_route(route), method.upper()
    for mapped, rx in _MAPPED_RE:
        if mapped.method == m:
            hit = rx.fullmatch(path)
            if hit is not None:
                return mapped, hit.groupdict()
    return None


def route_actions(entry: str) -> tuple[str, ...] | None:
    """What a policy's `rest_routes` entry ("POST /api/v1/users.create") amounts to: the
    bridge actions, () for a route refused whatever policy says, None for no bridge action."""
    method, _, route = entry.partition(" ")
    if never(method, route) is not None:
        return ()
    found = find(method, route)
    return None if found is None else found[0].actions


# ---- the steps before a decision (the gate's, can-i's and the harness's alike) ----------------

# Longest route text kept in an audit record. Guards record size against an app sending a
# megabyte of route (the engine refuses such a route; the refusal is still recorded).
MAX_ROUTE_LABEL = 300
# How far `_names_a_role` looks into a body. Guards the scan's cost; a body nested deeper or
# wider than this is refused rather than half-checked.
MAX_SCAN_NODES = 4096


def _names_a_role(body: Mapping[str, Any]) -> bool:
    """Whether a field anywhere in `body` names roles (`roles`, `roleName`, ...), checked
    breadth-first over at most MAX_SCAN_NODES values; past that, True (refuse)."""
    queue: list[Any] = [body]
    seen = 0
    while queue:
        node = queue.pop()
        seen += 1
        if seen > MAX_SCAN_NODES:
            return True
        if isinstance(node, Mapping):
            if ROLE_FIELDS & {k for k in node if isinstance(k, str)}:
                return True
            queue.extend(node.values())
        elif isinstance(node, list | tuple):
            queue.extend(node)
    return False


def route_label(args: Mapping[str, Any]) -> str:
    """"POST /api/v1/users.create", capped, for the audit record (whatever the app sent)."""
    method, route = args.get("method"), args.get("route")
    m = method.upper()[:16] if isinstance(method, str) else "?"
    r = route if isinstance(route, str) else "?"
    return f"{m} {r}"[:MAX_ROUTE_LABEL]


@dataclass(frozen=True)
class Refusal:
    """A refusal of one of the REST bridge's own steps: the code the app sees, the message."""

    code: str
    message: str


@dataclass(frozen=True)
class RoutePlan:
    """What step 1 found: the route's label, its body (`{}` for none) and, for a mapped route,
    its `MAPPED` row and path parameters (None: no bridge action)."""

    label: str
    params: Mapping[str, Any]
    found: tuple[Mapped, dict[str, str]] | None


def plan_route(args: Mapping[str, Any]) -> RoutePlan | Refusal:
    """Step 1, before `rest.call` is decided: the body's shape, a route no app may ever reach
    (`never`), an unmapped route whose body names a role. Pure: `stockade can-i` asks it too."""
    label = route_label(args)
    method, route, body = args.get("method"), args.get("route"), args.get("body")
    if body is not None and not isinstance(body, Mapping):
        return Refusal("invalid_argument", "rest.call: the body must be a JSON object")
    params: Mapping[str, Any] = body or {}
    found = None
    if isinstance(method, str) and isinstance(route, str):
        why = never(method, route)
        if why is not None:
            return Refusal("permission_denied",
                           f"{label} is never reachable by apps: {why} [guardrail]")
        found = find(method, route)
        if found is None and _names_a_role(params):
            return Refusal("permission_denied",
                           f"{label} has no bridge action and its body names a role: roles go "
                           "through roles.assign only (DESIGN rule 10) [guardrail]")
    return RoutePlan(label, params, found)


def translate_route(plan: RoutePlan, me: str) -> tuple[str, dict[str, Any]] | Refusal:
    """Step 3's translation of a mapped route (`plan.found`) into its bridge action and
    arguments, `me` being the app's own user id. Pure: `stockade can-i` asks it too."""
    assert plan.found is not None
    mapped, path_params = plan.found
    try:
        return mapped.translate(plan.params, path_params, me)
    except RouteRefused as exc:
        return Refusal("invalid_argument",
                       f"{plan.label} amounts to {' / '.join(mapped.actions)}: {exc}")
