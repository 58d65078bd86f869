"""The REST route handlers: plain functions `(ctx) -> dict` over an `EmbeddedServer`.

They know nothing about HTTP. `rest.RestDispatcher` matches a route, authenticates (or takes the
operator-configured service identity), checks the route's roles, builds a `Ctx` and calls one of
these; starlette and the in-process `rest.call` bridge both go through that one dispatcher.
A handler returns the success body (the dispatcher adds `"success": true`) or raises a
`ServerError` (mapped to status + `{"success": false, "error", "errorType"}`).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from host.server import auth
from host.server import rest_access as access
from host.server import rest_shapes as rs
from host.server.embedded import EmbeddedServer
from host.server.errors import Forbidden, InvalidArgument, NotFound
from host.server.limits import MAX_LIST
from host.server.principals import Caller, Principal
from host.server.shapes import Agent, Room, User

SERVER_VERSION = "stockade-embedded/0.1"

# Pagination as Rocket.Chat's settings default it: `count` 50 unless asked (API_Default_Count),
# at most 100 (API_Upper_Count_Limit). `count=0` (API_Allow_Infinite_Count) asks for everything
# and gets at most `limits.MAX_LIST`: no request makes the server render a whole table (the
# answer's `total` says when there is more).
DEFAULT_COUNT = 50
MAX_COUNT = 100
# `count` / `offset`: plain ASCII digits, at most 9 of them. Guards: int() of "²" or of a
# 5,000-digit number raises (a 500 before this check), and no list is a billion long.
_PAGE_NUMBER = re.compile(r"[0-9]{1,9}")
# A message id a caller may choose (chat.sendMessage's `_id`): what the embedded server's own ids
# are made of, at most `limits.MAX_ID`. Guards the messages table against ids that are no names
# (control characters, a megabyte) while Rocket.Chat clients (and the remote adapter) give
# 17-character random ids.
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
T = TypeVar("T")

ADMIN = frozenset({"admin"})
MANAGE = frozenset({"admin", "livechat-manager"})
LIVECHAT = frozenset({"admin", "livechat-manager", "livechat-agent"})


@dataclass
class Ctx:
    """One request: who asks (identity), who acts (principal), and the parameters."""

    server: EmbeddedServer
    identity: User | None
    principal: Principal
    op_id: str | None
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    auth_token: str | None = None  # the request's X-Auth-Token (HTTP only): `logout`, and the
    # one token a user's own password change keeps (`users_update`)

    def q(self, name: str) -> str | None:
        """An optional query parameter."""
        return self.query.get(name)

    def need_q(self, name: str) -> str:
        """A required query parameter."""
        v = self.query.get(name)
        if not v:
            raise InvalidArgument(f"query parameter {name!r} is required")
        return v

    def b(self, name: str, kind: type = str, *, required: bool = True) -> Any:
        """A body field of type `kind` (required unless told otherwise)."""
        v = self.body.get(name)
        if v is None:
            if required:
                raise InvalidArgument(f"body field {name!r} is required")
            return None
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise InvalidArgument(f"body field {name!r} must be a {kind.__name__}")
        return v

    def page_window(self) -> tuple[int, int]:
        """The request's (offset, count); `count=0` is MAX_LIST."""
        offset, count = self._page_number("offset", 0), self._page_number("count", DEFAULT_COUNT)
        return offset, (min(count, MAX_COUNT) if count else MAX_LIST)

    def page(self, items: Sequence[T], key: str) -> dict[str, Any]:
        """`items` cut to the request's `offset` / `count`, with Rocket.Chat's totals."""
        offset, count = self.page_window()
        shown = list(items[offset:offset + count])
        return {key: shown, "count": len(shown), "offset": offset, "total": len(items)}

    def _page_number(self, name: str, default: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        if _PAGE_NUMBER.fullmatch(raw) is None:
            raise InvalidArgument(f"{name} must be a whole number from 0 to 999999999")
        return int(raw)

    def is_manager(self) -> bool:
        """Whether the identity may act on others' behalf in livechat."""
        return self.identity is not None and bool(MANAGE & set(self.identity["roles"]))


Handler = Callable[[Ctx], dict[str, Any]]


def user_ref(ctx: Ctx) -> User:
    """A user named by `userId` or `username` (body for writes, query for reads)."""
    src: dict[str, Any] = ctx.body if ctx.body else dict(ctx.query)
    uid, uname = src.get("userId"), src.get("username")
    if isinstance(uid, str) and uid:
        return ctx.server.users_get(ctx.principal, uid)
    if isinstance(uname, str) and uname:
        return ctx.server.users_get_by_username(ctx.principal, uname)
    raise InvalidArgument("give userId or username")


# -- misc / users ---------------------------------------------------------------------------------

def info(ctx: Ctx) -> dict[str, Any]:
    """GET info: the server version (public, as in Rocket.Chat)."""
    return {"info": {"version": SERVER_VERSION}}


def room_doc(ctx: Ctx, r: Room) -> dict[str, Any]:
    """A room as Rocket.Chat's REST API shows it: the visitor's token and user name and the
    serving agent's user name beside their ids (a widget and a client read them there)."""
    doc = rs.room(r)
    try:
        v = ctx.server.livechat_get_visitor(ctx.principal, r["visitor_id"])
        doc["v"] = {**doc["v"], "token": v["token"], "username": f"guest-{v['id']}"}
    except NotFound:
        pass
    if r["served_by"] is not None:
        try:
            agent = ctx.server.users_get(ctx.principal, r["served_by"])
            doc["servedBy"] = {**doc["servedBy"], "username": agent["username"]}
        except NotFound:
            pass
    return doc


def me(ctx: Ctx) -> dict[str, Any]:
    """GET me: the calling identity."""
    assert ctx.identity is not None
    return rs.user(ctx.identity)


# Rocket.Chat users.create fields this server accepts and ignores (it sends no e-mail).
_IGNORED_CREATE = frozenset({"verified", "joinDefaultChannels",
                             "requirePasswordChange", "sendWelcomeEmail", "active"})
_CREATE = frozenset({"username", "name", "email", "roles", "customFields", "type", "password"})


def users_create(ctx: Ctx) -> dict[str, Any]:
    """POST users.create {username, name, email?, roles?, customFields?, type?}."""
    unknown = set(ctx.body) - _CREATE - _IGNORED_CREATE
    if unknown:
        raise InvalidArgument(f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
    password = ctx.b("password", required=False)
    if password is not None and isinstance(ctx.principal, Caller):
        # An app's write (through `rest.call`) never sets a credential.
        raise InvalidArgument("an app cannot set a user's password")
    # Checked and hashed before the user exists, so a bad password creates nobody.
    stored = auth.hash_password(password) if password is not None else None
    u = ctx.server.users_create(
        ctx.principal, ctx.b("username"), ctx.b("name"), ctx.b("type", required=False) or "user",
        email=ctx.b("email", required=False), roles=ctx.b("roles", list, required=False) or (),
        custom_fields=ctx.b("customFields", dict, required=False), op_id=ctx.op_id,
    )
    if stored is not None:
        auth.store_hash(ctx.server.db, u["id"], stored)
    if AGENT_ROLE in u["roles"]:
        sync_agent(ctx, u["id"], u["roles"])
    return {"user": rs.user(u)}


# Fields of another user that any signed-in identity may read (users.list, users.info); managers
# and admins see the rest. Guards other users' e-mail addresses and custom fields (an external
# id, a phone number) from every agent.
PUBLIC_USER_FIELDS = ("_id", "username", "name", "type", "active", "roles")


def user_view(ctx: Ctx, u: User) -> dict[str, Any]:
    """A user as the identity may see it: whole for itself, a manager or an admin; otherwise
    `PUBLIC_USER_FIELDS` only."""
    doc = rs.user(u)
    if ctx.is_manager() or (ctx.identity is not None and ctx.identity["id"] == u["id"]):
        return doc
    return {k: doc[k] for k in PUBLIC_USER_FIELDS}


def users_info(ctx: Ctx) -> dict[str, Any]:
    """GET users.info ?userId= | ?username=: another user's e-mails and custom fields for
    managers and admins only (`user_view`), as users.list shows them."""
    return {"user": user_view(ctx, user_ref(ctx))}


def users_update(ctx: Ctx) -> dict[str, Any]:
    """POST users.update {userId, data: {name?, email?, roles?, password?, customFields?,
    active?}}. `roles` replaces the user's roles (each added or removed as roles.* would)."""
    uid = ctx.b("userId")
    data: dict[str, Any] = ctx.b("data", dict)
    unknown = set(data) - {"customFields", "active", "password", "name", "email", "roles"}
    if unknown or not data:
        raise InvalidArgument("data may hold name, email, roles, password, customFields and "
                              "active")
    u = ctx.server.users_get(ctx.principal, uid)
    if "name" in data or "email" in data:
        u = ctx.server.users_set_profile(ctx.principal, uid, data.get("name"), data.get("email"))
    if "roles" in data:
        want = data["roles"]
        if not isinstance(want, list) or not all(isinstance(r, str) for r in want):
            raise InvalidArgument("roles must be a list of role names")
        for role in sorted(set(want) - set(u["roles"])):
            u = ctx.server.roles_assign(ctx.principal, uid, role, op_id=_sub(ctx.op_id, role))
        for role in sorted(set(u["roles"]) - set(want)):
            u = ctx.server.roles_remove(ctx.principal, uid, role, op_id=_sub(ctx.op_id, role))
        sync_agent(ctx, uid, u["roles"])
    if "password" in data:
        if isinstance(ctx.principal, Caller):
            raise InvalidArgument("an app cannot set a user's password")
        # Every token of the user goes with the old password; users changing their own keep
        # the one making this request (`auth.store_hash`).
        own = ctx.identity is not None and ctx.identity["id"] == uid
        auth.set_password(ctx.server.db, uid, data["password"],
                          keep_token=ctx.auth_token if own else None)
    if "customFields" in data:
        u = ctx.server.users_set_custom_fields(
            ctx.principal, uid, data["customFields"], op_id=_sub(ctx.op_id, "fields"))
    if "active" in data:
        u = ctx.server.users_set_active(
            ctx.principal, uid, data["active"], op_id=_sub(ctx.op_id, "active"))
    return {"user": rs.user(u)}


def _sub(op_id: str | None, part: str) -> str | None:
    # One REST call that makes two server writes records each under its own derived op_id.
    return None if op_id is None else f"{op_id}:{part}"


def users_set_active(ctx: Ctx) -> dict[str, Any]:
    """POST users.setActiveStatus {userId, activeStatus}."""
    u = ctx.server.users_set_active(
        ctx.principal, ctx.b("userId"), ctx.b("activeStatus", bool), op_id=ctx.op_id)
    return {"user": {"_id": u["id"], "active": u["active"]}}


# -- roles ----------------------------------------------------------------------------------------

def roles_list(ctx: Ctx) -> dict[str, Any]:
    """GET roles.list."""
    return {"roles": [rs.role(r) for r in ctx.server.roles_list()]}


AGENT_ROLE = "livechat-agent"


def sync_agent(ctx: Ctx, user_id: str, roles: list[str]) -> None:
    """For an operator's REST call, as in Rocket.Chat, the livechat-agent role *is* being an
    agent: giving it makes the user an agent, taking it away stops that. An app's call never
    does this (`ctx.rest` as an app): an agent is made through livechat.add_agent and its own
    permission, which a role change must not stand in for."""
    if isinstance(ctx.principal, Caller):
        return
    if not ctx.server.users_get(ctx.principal, user_id)["active"]:
        return  # a deactivated user keeps the role and is no agent (it could serve no room)
    is_agent = agent_or_none(ctx, user_id) is not None
    if AGENT_ROLE in roles and not is_agent:
        ctx.server.livechat_add_agent(ctx.principal, user_id)
    elif AGENT_ROLE not in roles and is_agent:
        ctx.server.livechat_remove_agent(ctx.principal, user_id)


def agent_or_none(ctx: Ctx, user_id: str) -> Agent | None:
    """The agent record of `user_id`, looked up directly (never a scan of the capped
    `list_agents`), or None when the user is no agent."""
    try:
        return ctx.server.livechat_get_agent(ctx.principal, user_id)
    except NotFound:
        return None


def _role_change(ctx: Ctx, add: bool) -> dict[str, Any]:
    target = user_ref(ctx)
    role = ctx.b("roleName", required=False) or ctx.b("roleId")  # clients send either
    fn = ctx.server.roles_assign if add else ctx.server.roles_remove
    after = fn(ctx.principal, target["id"], role, op_id=ctx.op_id)
    if role == AGENT_ROLE:
        sync_agent(ctx, target["id"], after["roles"])
    return {"role": rs.role(next(r for r in ctx.server.roles_list() if r["name"] == role))}


def roles_add(ctx: Ctx) -> dict[str, Any]:
    """POST roles.addUserToRole {roleName, username | userId}."""
    return _role_change(ctx, True)


def roles_remove(ctx: Ctx) -> dict[str, Any]:
    """POST roles.removeUserFromRole {roleName, username | userId}."""
    return _role_change(ctx, False)


# -- livechat agents and departments --------------------------------------------------------------

def agents_list(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/users/agent."""
    return ctx.page([rs.agent(a) for a in ctx.server.list_agents()], "users")


def agent_add(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/users/agent {username}."""
    u = user_ref(ctx)
    a = ctx.server.livechat_add_agent(ctx.principal, u["id"], op_id=ctx.op_id)
    return {"user": rs.agent(a)}


def agent_remove(ctx: Ctx) -> dict[str, Any]:
    """DELETE livechat/users/agent/{id}."""
    ctx.server.livechat_remove_agent(ctx.principal, ctx.path["id"], op_id=ctx.op_id)
    return {}


def agent_status(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/agent.status {status?, agentId?}: yourself, or anyone as a manager.
    Without a status it toggles available / not-available, as Rocket.Chat does."""
    assert ctx.identity is not None
    agent_id = ctx.b("agentId", required=False) or ctx.identity["id"]
    if agent_id != ctx.identity["id"] and not ctx.is_manager():
        raise Forbidden("only a livechat manager may set another agent's status")
    status = ctx.b("status", required=False)
    if status is None:
        now = ctx.server.livechat_get_agent(ctx.principal, agent_id)["status"]  # or NotFound
        status = "not-available" if now == "available" else "available"
    a = ctx.server.livechat_set_agent_status(ctx.principal, agent_id, status, op_id=ctx.op_id)
    return {"status": a["status"]}


def departments_list(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/department."""
    return ctx.page([rs.department(d) for d in ctx.server.list_departments()], "departments")


def department_create(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/department {department: {name}, agents?: [{agentId}]}. For an app (the
    REST bridge's route with no bridge action) `agents` must be empty: putting agents into a
    department is livechat.add_department_agent, decided per agent and limited to the app's
    own users (DESIGN rule 11), which this list would go around whatever identity runs it."""
    dep: dict[str, Any] = ctx.b("department", dict)
    agents = ctx.b("agents", list, required=False) or []
    ids = [a.get("agentId") if isinstance(a, dict) else None for a in agents]
    if any(not isinstance(i, str) for i in ids):
        raise InvalidArgument("agents must be a list of {agentId}")
    if ids and isinstance(ctx.principal, Caller):
        raise Forbidden("an app puts agents into a department with "
                        "livechat.add_department_agent, one of its own users at a time")
    d = ctx.server.add_department(dep.get("name"), [str(i) for i in ids])  # type: ignore[arg-type]
    return {"department": rs.department(d),
            "agents": [{"agentId": a, "count": 0, "order": 0} for a in d["agents"]]}


# -- livechat rooms, visitors, messages -----------------------------------------------------------

def _me(ctx: Ctx) -> str | None:
    return ctx.identity["id"] if ctx.identity is not None else None


def require_speaker(ctx: Ctx, room_id: str) -> str | None:
    """Staff speak in the rooms they serve; managers and admins in any (403 otherwise). Returns
    the user who must still serve the room when the message is written (None for a manager):
    `messages_send(served_by=)` checks it again inside the write, after the pre-send hook."""
    if access.has(ctx.identity, "view-livechat-rooms"):
        return None
    room = room_for(ctx, room_id, "this room is not yours")
    me = _me(ctx)
    access.require(me is not None and room["served_by"] == me,
                   "only the serving agent speaks in this room")
    return me


def my_departments(ctx: Ctx) -> list[str]:
    """The identity's departments (none when it is no agent)."""
    me = _me(ctx)
    agent = agent_or_none(ctx, me) if me is not None else None
    return [] if agent is None else agent["departments"]


def room_for(ctx: Ctx, room_id: str, what: str) -> Room:
    """The room, if the identity may see it (`host/server/rest_access.py`); else 403."""
    r = ctx.server.livechat_get_room(ctx.principal, room_id)
    access.require(access.can_access(ctx.identity, r, my_departments(ctx)), what)
    return r

def rooms_list(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/rooms ?open=true|false."""
    raw = ctx.q("open")
    if raw not in (None, "true", "false"):
        raise InvalidArgument("open must be true or false")
    open_ = None if raw is None else raw == "true"
    deps = my_departments(ctx)
    # An agent's rooms are chosen in SQL before the cap (the newest 500 rooms of all may hold
    # none of its own); can_access still decides each one.
    found = (ctx.server.livechat_list_rooms(ctx.principal, open_) if ctx.is_manager()
             else _seen_by_me(ctx, open_))
    rooms = [room_doc(ctx, r) for r in found if access.can_access(ctx.identity, r, deps)]
    return ctx.page(rooms, "rooms")


def _seen_by_me(ctx: Ctx, open_: bool | None) -> list[Room]:
    me = _me(ctx)
    return [] if me is None else ctx.server.livechat_rooms_seen_by(ctx.principal, me, open_)


def room_info(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/room.info ?roomId=."""
    return {"room": room_doc(ctx, room_for(ctx, ctx.need_q("roomId"), "this room is not yours"))}


def room_take(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/room.take {roomId, userId?}: yourself, or anyone as a manager."""
    assert ctx.identity is not None
    agent_id = ctx.b("userId", required=False) or ctx.identity["id"]
    if agent_id != ctx.identity["id"] and not ctx.is_manager():
        raise Forbidden("only a livechat manager may assign a room to someone else")
    # An agent takes from its queue (or keeps its own room); a served room is a manager's.
    room_for(ctx, ctx.b("roomId"), "the room is served by someone else or not in your queue")
    r = ctx.server.livechat_take_room(ctx.principal, ctx.b("roomId"), agent_id, op_id=ctx.op_id)
    return {"room": room_doc(ctx, r)}


def room_transfer(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/room.transfer (and room.forward) {roomId, departmentId?, userId?}: the
    serving agent, or a livechat manager, as Rocket.Chat's livechat:transfer requires. A queued
    room is not the transfer of an agent who sees it in its queue: handing it to someone else
    is a manager's take (`room_take`)."""
    what = "only the serving agent or a manager transfers a room"
    room = room_for(ctx, ctx.b("roomId"), what)
    manager = ctx.is_manager()
    access.require(manager or
                   (room["served_by"] is not None and room["served_by"] == _me(ctx)), what)
    # Checked again in the write (`served_by`): a transfer may commit before it takes the lock.
    r = ctx.server.livechat_transfer_room(
        ctx.principal, ctx.b("roomId"), department=ctx.b("departmentId", required=False),
        agent_id=ctx.b("userId", required=False), op_id=ctx.op_id,
        served_by=None if manager else _me(ctx),
    )
    return {"room": room_doc(ctx, r)}


def room_close(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/room.closeByUser {rid | roomId, comment?}: staff (livechat/room.close is
    the visitor's, `rest_livechat.visitor_close`)."""
    rid = ctx.b("rid", required=False) or ctx.b("roomId")
    room = room_for(ctx, rid, "this room is not yours")
    others = access.has(ctx.identity, "close-others-livechat-room")
    access.require(room["served_by"] == _me(ctx) or others,
                   "closing another agent's room needs close-others-livechat-room")
    r = ctx.server.livechat_close_room(  # `served_by`: checked again in the write
        ctx.principal, rid, ctx.b("comment", required=False), op_id=ctx.op_id,
        served_by=None if others else _me(ctx))
    return {"rid": r["id"], "comment": r["close_comment"]}


def visitor_save(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/visitor {visitor: {token, name?, email?, phone?, department?,
    customFields?}}: public, as the widget registers (the token is the visitor's credential).

    `customFields` in Rocket.Chat's documented list form `[{key, value, overwrite}]` or as an
    object; `phone` is kept as the custom field `phone`; `department` is accepted and not kept
    (a room names its department when it is opened)."""
    v: dict[str, Any] = ctx.b("visitor", dict)
    unknown = set(v) - {"token", "name", "email", "phone", "department", "customFields"}
    if unknown:
        raise InvalidArgument(f"unknown visitor field(s): {', '.join(sorted(unknown))[:200]}")
    fields = _visitor_fields(v.get("customFields"))
    phone = v.get("phone")
    if phone is not None:
        if not isinstance(phone, str):
            raise InvalidArgument("phone must be a string")
        fields = {**(fields or {}), "phone": phone}
    if v.get("department") is not None and not isinstance(v.get("department"), str):
        raise InvalidArgument("department must be a string")
    saved = ctx.server.save_visitor(
        v.get("token"), v.get("name"), v.get("email"), fields,  # type: ignore[arg-type]
    )
    return {"visitor": rs.visitor(saved)}


def _visitor_fields(raw: Any) -> dict[str, Any] | None:
    if raw is None or isinstance(raw, dict):
        return raw
    if isinstance(raw, list) and all(isinstance(f, dict) and isinstance(f.get("key"), str)
                                     for f in raw):
        return {f["key"]: f.get("value") for f in raw}
    raise InvalidArgument("customFields must be an object or a list of {key, value}")


def visitor_info(ctx: Ctx) -> dict[str, Any]:
    """GET livechat/visitors.info ?visitorId=: managers, or an agent with one of the visitor's
    rooms (its e-mail, phone and widget token are not every agent's to read)."""
    v = ctx.server.livechat_get_visitor(ctx.principal, ctx.need_q("visitorId"))
    if not access.has(ctx.identity, "view-livechat-rooms"):
        me = _me(ctx)
        # By the visitor's own rooms, in SQL (not among the newest 500 of all rooms).
        r = (None if me is None
             else ctx.server.livechat_visitor_room_seen_by(ctx.principal, me, v["id"]))
        access.require(r is not None and access.can_access(ctx.identity, r, my_departments(ctx)),
                       "this visitor is in none of your rooms")
    return {"visitor": rs.visitor(v)}


def visitor_room(ctx: Ctx) -> dict[str, Any]:
    """POST livechat/room {token, departmentId?}: the visitor starts a conversation."""
    v = ctx.server.get_visitor_by_token(ctx.b("token"))
    r = ctx.server.livechat_create_room(
        ctx.principal, v["id"], ctx.b("departmentId", required=False), op_id=ctx.op_id)
    return {"room": room_doc(ctx, r)}


def chat_send(ctx: Ctx) -> dict[str, Any]:
    """POST chat.sendMessage {message: {rid, msg, _id?, alias?, avatar?}}: as the identity (or the
    calling app's user); `alias`/`avatar` show another name to the visitor, only for an
    identity holding Rocket.Chat's message-impersonate (403 otherwise; the sender stays the
    identity)."""
    msg: dict[str, Any] = ctx.b("message", dict)
    rid, text = msg.get("rid"), msg.get("msg")
    if not isinstance(rid, str) or not isinstance(text, str):
        raise InvalidArgument("message needs rid and msg strings")
    must_serve = require_speaker(ctx, rid)
    alias, avatar = msg.get("alias"), msg.get("avatar")
    if not isinstance(alias, (str, type(None))) or not isinstance(avatar, (str, type(None))):
        raise InvalidArgument("alias and avatar must be strings")
    if alias is not None or avatar is not None:
        access.require(access.has(ctx.identity, "message-impersonate"),
                       "alias and avatar need the message-impersonate permission")
    # Rocket.Chat's chat.sendMessage takes the message's `_id` from its caller (OpenAPI: "allows
    # for passing a value for `_id`"); one malformed or already used is refused (400).
    mid = msg.get("_id")
    if mid is not None and (not isinstance(mid, str) or not MESSAGE_ID.fullmatch(mid)):
        raise InvalidArgument("message._id must be 1..64 letters, digits, '_' or '-'")
    m = ctx.server.messages_send(ctx.principal, rid, text, op_id=ctx.op_id, alias=alias,
                                 avatar_url=avatar, served_by=must_serve, message_id=mid)
    return {"message": rs.message(m)}


def message_get(ctx: Ctx) -> dict[str, Any]:
    """GET chat.getMessage ?msgId=: one message, if the identity may see its room (Rocket.Chat:
    "you must have permission to access the room where the message resides")."""
    m = ctx.server.messages_get(ctx.principal, ctx.need_q("msgId"))
    room_for(ctx, m["room_id"], "this room is not yours")
    return {"message": rs.message(m)}


def room_messages(ctx: Ctx) -> dict[str, Any]:
    """GET channels.messages ?roomId=&count=&offset=: newest first, as Rocket.Chat lists.
    Pages reach back over the room's latest MAX_LIST (500) messages, the server's list cap."""
    rid = ctx.need_q("roomId")
    room_for(ctx, rid, "this room is not yours")
    msgs = ctx.server.messages_list(ctx.principal, rid, MAX_LIST)
    return ctx.page([rs.message(m) for m in reversed(msgs)], "messages")
