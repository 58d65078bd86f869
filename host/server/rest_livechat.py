"""Livechat REST routes the widget and the queue use, in Rocket.Chat's shapes.

- The widget's routes authenticate the *visitor* by its widget token, as Rocket.Chat's do (the
  chat widget holds no staff credentials): register (`POST livechat/visitor`), read yourself
  (`GET livechat/visitor/{token}`), get or open your room (`GET livechat/room`), write in it
  (`POST livechat/message`), read its history (`GET livechat/messages.history/{rid}`) and close
  it (`POST livechat/room.close`). A token reaches only its own visitor's rooms.
- The queue (`livechat/inquiries.*`): an inquiry is a room waiting for an agent; its id is the
  room's. An agent lists and takes the inquiries of its departments' queue
  (`host/server/rest_access.py`); managers all of them.
- Agents and managers by id, `rooms.info`, `chat.postMessage`, and the routing configuration.
"""
from __future__ import annotations

from typing import Any

from host.server import rest_access as access
from host.server import rest_shapes as rs
from host.server.errors import Forbidden, InvalidArgument, NotFound
from host.server.rest_routes import (
    Ctx,
    my_departments,
    require_speaker,
    room_doc,
    room_for,
    user_ref,
)
from host.server.shapes import Room, Visitor

MANAGER_ROLE = "livechat-manager"


# -- the widget (visitor token) -------------------------------------------------------------------

def _visitor(ctx: Ctx, token: Any) -> Visitor:
    if not isinstance(token, str) or not token:
        raise InvalidArgument("token (the visitor's widget token) is required")
    try:
        return ctx.server.get_visitor_by_token(token)
    except NotFound:
        raise NotFound("no visitor with this token") from None


def _own_room(ctx: Ctx, visitor: Visitor, rid: str) -> Room:
    # Another visitor's room and an id no room has answer alike, not "exists, not yours": the
    # server's own NotFound says the room is unknown, a word a visitor must not tell apart.
    try:
        r: Room | None = ctx.server.livechat_get_room(ctx.principal, rid)
    except NotFound:
        r = None
    if r is None or r["visitor_id"] != visitor["id"]:
        raise NotFound(f"no room {rid!r} for this visitor")
    return r


def visitor_get(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/visitor/{token}."""
    return {"visitor": rs.visitor(_visitor(ctx, ctx.path["token"]))}


def visitor_room(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/room ?token=&rid=&department=: the visitor's open room, or a new one."""
    v = _visitor(ctx, ctx.q("token"))
    rid = ctx.q("rid")
    if rid:
        return {"room": room_doc(ctx, _own_room(ctx, v, rid)), "newRoom": False}
    mine = ctx.server.livechat_open_room_of(ctx.principal, v["id"])  # by visitor, in SQL
    if mine is not None:
        return {"room": room_doc(ctx, mine), "newRoom": False}
    room = ctx.server.visitor_start_room(v["id"], ctx.q("department") or None)
    return {"room": room_doc(ctx, room), "newRoom": True}


def visitor_message(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/message {token, rid, msg}: the visitor writes in its own room."""
    v = _visitor(ctx, ctx.b("token"))
    room = _own_room(ctx, v, ctx.b("rid"))
    m = ctx.server.visitor_send_message(v["id"], room["id"], ctx.b("msg"))
    return {"message": rs.message(m)}


def visitor_close(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/room.close {rid, token}: the visitor closes its own room (Rocket.Chat's
    widget route: the token is the credential, no staff sign-in). Staff close with
    livechat/room.closeByUser."""
    v = _visitor(ctx, ctx.b("token"))
    room = _own_room(ctx, v, ctx.b("rid"))
    r = ctx.server.visitor_close_room(v["id"], room["id"])
    return {"rid": r["id"], "comment": "Closed by visitor"}


def visitor_history(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/messages.history/{rid} ?token=&count=&offset=: newest first."""
    v = _visitor(ctx, ctx.q("token"))
    room = _own_room(ctx, v, ctx.path["rid"])
    msgs = ctx.server.messages_list(ctx.principal, room["id"], 500)
    return ctx.page([rs.message(m) for m in reversed(msgs)], "messages")


# -- the queue ------------------------------------------------------------------------------------

def _inquiry(r: Room) -> dict[str, Any]:
    return {"_id": r["id"], "rid": r["id"], "status": "queued" if r["served_by"] is None
            else "taken", "department": r["department_id"], "v": {"_id": r["visitor_id"]},
            "ts": rs.iso(r["created_at"])}


def _queue(ctx: Ctx, department: str | None) -> list[Room]:
    """The caller's queue, longest waiting first: chosen in SQL by its departments before the
    500 cap (a filter over the newest open rooms lost the oldest inquiry); can_access still
    decides each room."""
    deps = my_departments(ctx)
    if access.has(ctx.identity, "view-livechat-rooms"):
        queued = ctx.server.livechat_queue(ctx.principal, None, department)
    elif ctx.identity is not None:
        queued = ctx.server.livechat_queue(ctx.principal, ctx.identity["id"], department)
    else:
        return []
    return [r for r in queued if access.can_access(ctx.identity, r, deps)]


def inquiries_list(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/inquiries.list ?department=&count=&offset=: the caller's queue, longest
    waiting first (as Rocket.Chat's queue)."""
    return ctx.page([_inquiry(r) for r in _queue(ctx, ctx.q("department"))], "inquiries")


def inquiries_get_one(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/inquiries.getOne ?roomId=."""
    r = room_for(ctx, ctx.need_q("roomId"), "this room is not in your queue")
    return {"inquiry": _inquiry(r)}


def inquiries_take(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/inquiries.take {inquiryId, userId?}: take a queued room."""
    assert ctx.identity is not None
    agent_id = ctx.b("userId", required=False) or ctx.identity["id"]
    if agent_id != ctx.identity["id"] and not ctx.is_manager():
        raise Forbidden("only a livechat manager may give an inquiry to someone else")
    r = room_for(ctx, ctx.b("inquiryId"), "this inquiry is not in your queue")
    if r["served_by"] is not None:
        raise InvalidArgument("the inquiry was already taken")
    taken = ctx.server.livechat_take_room(ctx.principal, r["id"], agent_id, op_id=ctx.op_id)
    return {"inquiry": _inquiry(taken)}


# -- agents and managers --------------------------------------------------------------------------

def agent_get(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/users/agent/{id}: NotFound for an unknown user or one who is no agent."""
    return {"user": rs.agent(ctx.server.livechat_get_agent(ctx.principal, ctx.path["id"]))}


def managers_list(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/users/manager: users with the livechat-manager role."""
    return ctx.page([rs.user(u) for u in ctx.server.users_in_role(MANAGER_ROLE)], "users")


def manager_add(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/users/manager {username}."""
    u = ctx.server.roles_assign(ctx.principal, user_ref(ctx)["id"], MANAGER_ROLE,
                                op_id=ctx.op_id)
    return {"user": rs.user(u)}


def manager_get(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/users/manager/{id}."""
    u = ctx.server.users_get(ctx.principal, ctx.path["id"])
    if MANAGER_ROLE not in u["roles"]:
        raise NotFound(f"user {u['id']!r} is not a livechat manager")
    return {"user": rs.user(u)}


def manager_remove(ctx: Ctx) -> dict[str, Any]:
    """DELETE livechat/users/manager/{id}."""
    manager_get(ctx)
    ctx.server.roles_remove(ctx.principal, ctx.path["id"], MANAGER_ROLE, op_id=ctx.op_id)
    return {}


def roles_users(ctx: Ctx) -> dict[str, Any]:
    """GET roles.getUsersInRole ?role=&count=&offset=."""
    role = ctx.need_q("role")
    if role not in {r["name"] for r in ctx.server.roles_list()}:
        raise InvalidArgument(f"no role {role!r}")
    return ctx.page([rs.user(u) for u in ctx.server.users_in_role(role)], "users")


# -- rooms, messages, configuration ---------------------------------------------------------------

def rooms_info(ctx: Ctx) -> dict[str, Any]:
    """GET rooms.info ?roomId=: a livechat room the caller may see."""
    return {"room": room_doc(ctx, room_for(ctx, ctx.need_q("roomId"), "this room is not yours"))}


def chat_post(ctx: Ctx) -> dict[str, Any]:
    """POST chat.postMessage {roomId, text}: as the identity, in a room it serves (staff) or
    any room (managers). Rocket.Chat's `channel` (a room name) names no livechat room."""
    rid, text = ctx.body.get("roomId"), ctx.body.get("text")
    if not isinstance(rid, str) or not rid:
        raise InvalidArgument("roomId is required (livechat rooms have no channel name)")
    if not isinstance(text, str):
        raise InvalidArgument("text must be a string")
    must_serve = require_speaker(ctx, rid)
    m = ctx.server.messages_send(ctx.principal, rid, text, op_id=ctx.op_id, served_by=must_serve)
    return {"ts": rs.iso(m["ts"]), "channel": rid, "message": rs.message(m)}


def routing_config(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/config/routing: how this server routes (auto-assign, with a queue)."""
    return {"config": {"previewRoom": False, "showConnecting": False, "showQueue": True,
                       "showQueueLink": False, "returnQueue": False,
                       "enableTriggerAction": True, "autoAssignAgent": True}}


def users_delete(ctx: Ctx) -> dict[str, Any]:
    """POST users.delete {userId | username}: a user who never served a livechat room."""
    ctx.server.users_delete(ctx.principal, user_ref(ctx)["id"])
    return {}


def channels_list(ctx: Ctx) -> dict[str, Any]:
    """GET channels.list: this server has livechat rooms only, so no channel to list."""
    return ctx.page([], "channels")


def channels_history(ctx: Ctx) -> dict[str, Any]:
    """GET channels.history ?roomId=&count=&offset=: a livechat room's messages, newest
    first, for staff who may see the room."""
    rid = ctx.need_q("roomId")
    room_for(ctx, rid, "this room is not yours")
    msgs = ctx.server.messages_list(ctx.principal, rid, 500)
    return ctx.page([rs.message(m) for m in reversed(msgs)], "messages")


def department_get(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/department/{id}: the department and, beside it, its agents (as Rocket.Chat
    answers; its department list carries only `numAgents`)."""
    d = ctx.server.livechat_get_department(ctx.principal, ctx.path["id"])
    if d["id"] != ctx.path["id"]:
        raise NotFound(f"no department {ctx.path['id']!r}")  # by id only, as Rocket.Chat
    return {"department": rs.department(d),
            "agents": [rs.department_agent(d["id"], a, _username(ctx, a), d["enabled"])
                       for a in d["agents"]]}


def agent_departments(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/agents/{id}/departments: the departments an agent is in (Rocket.Chat's
    `livechat/users/agent/{id}` names none)."""
    a = ctx.server.livechat_get_agent(ctx.principal, ctx.path["id"])
    deps = {d["id"]: d for d in ctx.server.list_departments()}
    return {"departments": [rs.department_agent(i, a["user_id"], a["username"],
                                                deps[i]["enabled"] if i in deps else True)
                            for i in a["departments"]]}


def _username(ctx: Ctx, user_id: str) -> str | None:
    try:
        return ctx.server.users_get(ctx.principal, user_id)["username"]
    except NotFound:
        return None


def department_agents(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/department/{id}/agents {upsert: [{agentId}], remove: [{agentId}]}: put
    agents into a department and take others out (each idempotent)."""
    upsert = ctx.b("upsert", list, required=False) or []
    remove = ctx.b("remove", list, required=False) or []
    for entries, fn in ((upsert, ctx.server.livechat_add_department_agent),
                        (remove, ctx.server.livechat_remove_department_agent)):
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("agentId"), str):
                raise InvalidArgument("upsert and remove are lists of {agentId}")
            fn(ctx.principal, ctx.path["id"], e["agentId"], op_id=None)
    return {}


def permissions_list(ctx: Ctx) -> dict[str, Any]:
    """GET permissions.listAll: each permission with the roles that hold it. A custom role this
    server marks privileged (an operator's role with admin's powers) is listed beside `admin`,
    as Rocket.Chat lists a custom role given those permissions (the remote adapter reads it)."""
    named = frozenset().union(*access.LISTED_PERMISSIONS.values())
    custom = {r["name"] for r in ctx.server.roles_list()
              if r["privileged"] and r["name"] not in named}
    return {"update": [{"_id": p, "roles": sorted(roles | custom if "admin" in roles else roles)}
                       for p, roles in sorted(access.LISTED_PERMISSIONS.items())], "remove": []}
