"""The in-memory chat server behind the app-author harness (`sandbox/harness.py`).

It behaves like the embedded server where an app's tests can see it: unique case-insensitive
usernames (`Conflict`), unknown ids (`NotFound`), agents and routing, take / transfer / close,
messages, the persistence store, and the events those operations emit. It lives apart from the
harness so each reads on its own; the harness is the only module that uses it, and neither is
ever loaded in a confined child.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from policies import argrules, storerules
from policies.names import impersonation_refused, person_not_made_by
from policies.vocabulary import ADMIN_CLASS_ROLES, IMPERSONATING_ROLES
from sandbox import errors

_T = TypeVar("_T")

MANIFEST_NAME = "app.toml"
SETTING_TYPES = ("string", "int", "bool", "select", "secret")
BUILTIN_ROLES = ("user", "bot", "app", "guest", "livechat-agent")
MAX_MESSAGE_TEXT = 8 * 1024
DEFAULT_MESSAGES = 50
MAX_LIST = 500
AGENT_ROLE = "livechat-agent"
ROUTABLE_OFFLINE_ROLE = "bot"  # a bot agent is routable while not-available
# The host's persistence rules: one copy, `policies.storerules` (the host's store uses it too).
ASSOCIATION_KINDS = tuple(sorted(storerules.ASSOCIATION_KINDS))
MAX_STORED_VALUE_BYTES = storerules.MAX_VALUE_BYTES
# `find`: the first FIND_RECORDS records by key, refused past FIND_REPLY_BYTES (values as
# canonical JSON, keys at 6 bytes a byte, 32 bytes a record), as the host's reply budget.
FIND_RECORDS = 100
FIND_REPLY_BYTES = (1 << 20) - 64 * 1024
MAX_STORE_KEY = storerules.MAX_KEY_LEN


class HarnessError(Exception):
    """The test set-up is wrong (bad app.toml, unknown setting, an event the host would never
    deliver, no http_responder...). Never raised to app code as a bridge error."""


def checked(check: Callable[..., _T], *args: Any) -> _T:
    """Apply one of the server's argument rules; its refusal as the app sees it."""
    try:
        return check(*args)
    except argrules.ArgumentProblem as exc:
        raise errors.InvalidArgument(str(exc)) from None


def stored(check: Callable[..., _T], *args: Any) -> _T:
    """Apply one of the host's record rules; its refusal as the app sees it."""
    try:
        return check(*args)
    except storerules.PersistenceError as exc:
        raise errors.InvalidArgument(str(exc)) from None


def plain_copy(value: _T) -> _T:
    """A deep copy through JSON: what crosses the wire is data, never a shared object."""
    return cast(_T, json.loads(json.dumps(value)))




# ---------------------------------------------------------------------------------------------
# The fake chat server behind the bridges.
# ---------------------------------------------------------------------------------------------


class FakeServer:
    """An in-memory omnichannel server with the embedded server's data shapes.

    Tests normally reach it through `AppHarness` helpers; `users`, `rooms`, `visitors`,
    `messages`, `departments` and `store` are plain dicts/lists you may inspect.
    """

    def __init__(self, app_id: str, clock: Callable[[], float], app_name: str = "") -> None:
        self.app_id = app_id
        self.clock = clock
        self.users: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}  # user id -> {"status", "departments"}
        self.departments: dict[str, dict[str, Any]] = {}
        self.visitors: dict[str, dict[str, Any]] = {}
        self.rooms: dict[str, dict[str, Any]] = {}
        self.messages: list[dict[str, Any]] = []
        self.store: dict[str, dict[str, Any]] = {}  # key -> {"value", "association"}
        self.roles: set[str] = set(BUILTIN_ROLES) | set(ADMIN_CLASS_ROLES)
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self._seq = 0
        self.app_user = self.new_user(f"app.{app_id}", app_name or app_id, "app", roles=["app"],
                                      app_id=app_id)

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq}"

    def _emit(self, name: str, payload: dict[str, Any]) -> None:
        self.emitted.append((name, plain_copy(payload)))

    # -- users ------------------------------------------------------------------------------

    def new_user(
        self, username: str, name: str, type: str, *, email: str | None = None,
        roles: Iterable[str] = (), custom_fields: Mapping[str, str] | None = None,
        created_by_app: str | None = None, app_id: str | None = None,
    ) -> dict[str, Any]:
        # The server's own rules (one copy, `policies.argrules`), before anything is written.
        username = checked(argrules.username, username)
        if created_by_app is not None:  # an app never makes a user in its peers' namespace
            checked(argrules.not_reserved, username)
        name = checked(argrules.name, name)
        if email is not None:
            email = checked(argrules.email, email)
        fields = checked(argrules.fields, custom_fields)
        if any(u["username"].casefold() == username.casefold() for u in self.users.values()):
            raise errors.Conflict(f"username {username!r} is already taken")
        if email is not None and any(
            email.casefold() in (e.casefold() for e in u["emails"]) for u in self.users.values()
        ):
            raise errors.Conflict(f"email {email!r} is already in use")
        role_list = sorted(set(roles)) or [type]
        for r in role_list:
            if r not in self.roles:
                raise errors.NotFound(f"no role named {r!r}")
        uid = self.next_id("u")
        self.users[uid] = {
            "id": uid, "type": type, "username": username, "name": name,
            "emails": [email] if email else [], "roles": role_list, "active": True,
            "custom_fields": fields, "created_by_app": created_by_app,
            "app_id": app_id, "created_at": self.clock(),
        }
        return self.users[uid]

    def user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            raise errors.NotFound(f"no user with id {user_id!r}")
        return self.users[user_id]

    def changeable(self, user_id: str) -> dict[str, Any]:
        """The user an app's call changes, refused as the host's servers refuse it whatever a
        policy's `any_user` says: another app's own user (that app's identity,
        `host.server.users.check_not_another_apps_user`)."""
        u = self.user(user_id)
        if (u["app_id"] is not None or u["type"] == "app") and user_id != self.app_user["id"]:
            raise errors.PermissionDenied("that is another app's own user: only its install "
                                          "and uninstall manage it")
        return u

    def users_get(self, user_id: str) -> dict[str, Any]:
        return self.user(user_id)

    def users_get_by_username(self, username: str) -> dict[str, Any]:
        for u in self.users.values():
            if u["username"].casefold() == username.casefold():
                return u
        raise errors.NotFound(f"no user with username {username!r}")

    def users_find_by_field(self, key: str, value: str) -> list[dict[str, Any]]:
        key = checked(argrules.field_key, key)  # the server's custom-field rules, as stored
        value = checked(argrules.field_value, value, key)
        return [u for u in self.users.values() if u["custom_fields"].get(key) == value][:MAX_LIST]

    def users_create(self, username: str, name: str, type: str, email: str | None = None,
                     roles: list[str] | None = None,
                     custom_fields: dict[str, str] | None = None) -> dict[str, Any]:
        # The embedded server's order: the names first (new_user checks them again, harmless).
        checked(argrules.not_reserved, checked(argrules.username, username))
        checked(argrules.name, name)
        if type not in ("user", "bot"):
            raise errors.InvalidArgument(
                "type must be 'user' or 'bot' (app users come with installs)")
        return self.new_user(username, name, type, email=email, roles=roles or (),
                             custom_fields=custom_fields, created_by_app=self.app_id)

    def users_set_custom_fields(self, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        fields = checked(lambda v: argrules.fields(v, allow_delete=True), fields)
        u = self.changeable(user_id)
        for k, v in fields.items():
            if v is None:
                u["custom_fields"].pop(k, None)
            else:
                u["custom_fields"][k] = v
        return u

    def users_deactivate(self, user_id: str) -> dict[str, Any]:
        u = self.changeable(user_id)
        if set(u["roles"]) & ADMIN_CLASS_ROLES:  # as `users.check_app_may_deactivate`
            raise errors.PermissionDenied("apps may not deactivate a user holding a privileged "
                                          "role")
        u["active"] = False
        return u

    def roles_assign(self, user_id: str, role: str) -> dict[str, Any]:
        u = self.changeable(user_id)
        if role not in self.roles:
            raise errors.NotFound(f"no role named {role!r}")
        if role in IMPERSONATING_ROLES and person_not_made_by(  # as both servers decide
                u["type"], u["created_by_app"], self.app_id):
            raise errors.PermissionDenied(impersonation_refused(role))
        u["roles"] = sorted(set(u["roles"]) | {role})
        self.dispatch_queue(user_id)  # the bot role makes an agent routable while offline
        return u

    def roles_remove(self, user_id: str, role: str) -> dict[str, Any]:
        u = self.changeable(user_id)
        u["roles"] = [r for r in u["roles"] if r != role]
        return u

    # -- agents and departments -------------------------------------------------------------

    def agent(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.agents:
            self.user(user_id)  # NotFound for an unknown user first
            raise errors.NotFound(f"user {user_id!r} is not a livechat agent")
        u = self.users[user_id]
        a = self.agents[user_id]
        return {"user_id": user_id, "username": u["username"], "name": u["name"],
                "type": u["type"], "status": a["status"],
                "routable_offline": ROUTABLE_OFFLINE_ROLE in u["roles"],
                "departments": sorted(a["departments"])}

    def livechat_add_agent(self, user_id: str) -> dict[str, Any]:
        u = self.changeable(user_id)
        if not u["active"]:
            raise errors.Conflict(f"user {user_id!r} is deactivated")
        self.agents.setdefault(user_id, {"status": "not-available", "departments": set()})
        # The role alone, as the embedded server's add_agent, which routes no queued room (a
        # status, a department, the bot role or a reactivation does: `dispatch_queue`).
        u["roles"] = sorted(set(u["roles"]) | {AGENT_ROLE})
        return self.agent(user_id)

    def livechat_remove_agent(self, user_id: str) -> dict[str, Any]:
        self.changeable(user_id)
        record = self.agent(user_id)
        del self.agents[user_id]
        self.roles_remove(user_id, AGENT_ROLE)
        return record

    def livechat_set_agent_status(self, user_id: str, status: str) -> dict[str, Any]:
        if status not in ("available", "not-available"):
            raise errors.InvalidArgument("status must be 'available' or 'not-available'")
        self.changeable(user_id)
        self.agent(user_id)
        self.agents[user_id]["status"] = status
        self.dispatch_queue(user_id)
        return self.agent(user_id)

    def livechat_add_department_agent(self, department: str, user_id: str) -> dict[str, Any]:
        dep = self.department(department)
        self.changeable(user_id)
        self.agent(user_id)
        self.agents[user_id]["departments"].add(dep["id"])
        self.dispatch_queue(user_id)
        return self.department(dep["id"])

    def livechat_remove_department_agent(self, department: str, user_id: str
                                         ) -> dict[str, Any]:
        dep = self.department(department)
        if user_id in self.users:  # an unknown user is no error here, as on the host
            self.changeable(user_id)
        if user_id in self.agents:
            self.agents[user_id]["departments"].discard(dep["id"])
        return self.department(dep["id"])

    def livechat_get_department(self, department: str) -> dict[str, Any]:
        return self.department(department)

    def livechat_list_departments(self) -> list[dict[str, Any]]:
        return sorted((self.department(i) for i in self.departments),
                      key=lambda d: str(d["name"]).casefold())

    def department(self, id_or_name: str) -> dict[str, Any]:
        for d in self.departments.values():
            if d["id"] == id_or_name or d["name"].casefold() == id_or_name.casefold():
                return {**d, "agents": sorted(
                    uid for uid, a in self.agents.items() if d["id"] in a["departments"])}
        raise errors.NotFound(f"no department {id_or_name!r}")

    def _routable(self, user_id: str) -> bool:
        u = self.users[user_id]
        return u["active"] and user_id in self.agents and (
            self.agents[user_id]["status"] == "available" or ROUTABLE_OFFLINE_ROLE in u["roles"])

    def select_agent(self, department_id: str | None, exclude: str | None = None) -> str | None:
        """Like the embedded routing manager: the routable agent serving the fewest open rooms,
        ties broken on username then id."""
        candidates = [
            uid for uid, a in self.agents.items()
            if self._routable(uid) and uid != exclude
            and (department_id is None or department_id in a["departments"])
        ]

        def load(uid: str) -> tuple[int, str, str]:
            served = sum(1 for r in self.rooms.values() if r["open"] and r["served_by"] == uid)
            return (served, self.users[uid]["username"].casefold(), uid)

        return min(candidates, key=load) if candidates else None

    def dispatch_queue(self, user_id: str) -> None:
        """As the embedded server after a change that may make `user_id` routable (status,
        department, bot role, reactivation; `host/server/rooms.py` `dispatch_queue`): each
        queued room it could serve, oldest first, goes to the agent routing picks."""
        if user_id not in self.users or not self._routable(user_id):
            return
        deps = self.agents[user_id]["departments"]
        queued = sorted((r for r in self.rooms.values() if r["open"] and r["served_by"] is None
                         and (r["department_id"] is None or r["department_id"] in deps)),
                        key=lambda r: (r["created_at"], r["id"]))
        for room in queued[:MAX_LIST]:
            agent_id = self.select_agent(room["department_id"])
            if agent_id is not None:
                self._serve(room, agent_id)
                self._emit("livechat.agent_assigned",
                           {"room": room, "agent": self.agent(agent_id)})

    # -- rooms and visitors -----------------------------------------------------------------

    def livechat_get_room(self, room_id: str) -> dict[str, Any]:
        if room_id not in self.rooms:
            raise errors.NotFound(f"no livechat room with id {room_id!r}")
        return self.rooms[room_id]

    def open_room(self, room_id: str) -> dict[str, Any]:
        room = self.livechat_get_room(room_id)
        if not room["open"]:
            raise errors.Conflict(f"livechat room {room_id!r} is closed")
        return room

    def livechat_list_rooms(self, open: bool | None = None) -> list[dict[str, Any]]:
        if open is not None and not isinstance(open, bool):
            raise errors.InvalidArgument("open must be true, false or absent")
        rooms = [r for r in self.rooms.values() if open is None or r["open"] == open]
        return sorted(rooms, key=lambda r: (-r["created_at"], r["id"]))[:MAX_LIST]

    def livechat_get_visitor(self, visitor_id: str) -> dict[str, Any]:
        if visitor_id not in self.visitors:
            raise errors.NotFound(f"no visitor with id {visitor_id!r}")
        return self.visitors[visitor_id]

    def livechat_create_room(self, visitor_id: str, department: str | None = None,
                             *, custom_fields: Mapping[str, str] | None = None,
                             created_by_app: str | None = None) -> dict[str, Any]:
        visitor = self.livechat_get_visitor(visitor_id)
        dep_id = self.department(department)["id"] if department is not None else None
        for r in self.rooms.values():
            if r["visitor_id"] == visitor_id and r["open"]:
                raise errors.Conflict(f"visitor {visitor_id!r} already has an open room")
        rid = self.next_id("r")
        room = self.rooms[rid] = {
            "id": rid, "visitor_id": visitor_id, "department_id": dep_id, "served_by": None,
            "open": True, "custom_fields": dict(custom_fields or {}), "agent_display": None,
            "created_by_app": created_by_app, "created_at": self.clock(), "closed_at": None,
            "closed_by": None, "close_comment": None,
        }
        self._emit("livechat.room_started", {"room": room, "visitor": visitor})
        agent_id = self.select_agent(dep_id)
        if agent_id is not None:
            self._serve(room, agent_id)
            self._emit("livechat.agent_assigned", {"room": room, "agent": self.agent(agent_id)})
        return room

    def _serve(self, room: dict[str, Any], agent_id: str) -> None:
        room["served_by"] = agent_id
        room["agent_display"] = None  # the display belonged to the previous serving app

    def livechat_take_room(self, room_id: str, agent_id: str) -> dict[str, Any]:
        room = self.open_room(room_id)
        agent = self.agent(agent_id)
        if room["served_by"] == agent_id:
            raise errors.Conflict(f"agent {agent_id!r} already serves room {room_id!r}")
        if room["served_by"] is not None:
            raise errors.Conflict(f"room {room_id!r} is served by another agent; transfer it")
        if not self.users[agent_id]["active"]:  # as the real server: no room to a deactivated
            raise errors.Conflict(f"agent {agent_id!r} is deactivated")
        self._serve(room, agent_id)
        self._emit("livechat.agent_assigned", {"room": room, "agent": agent})
        return room

    def livechat_transfer_room(self, room_id: str, department: str | None = None,
                               agent_id: str | None = None) -> dict[str, Any]:
        if department is None and agent_id is None:
            raise errors.InvalidArgument("transfer needs a department or an agent_id")
        room = self.open_room(room_id)
        old = room["served_by"]
        dep = self.department(department) if department is not None else None
        if agent_id is not None:
            self.agent(agent_id)
            if agent_id == old:
                raise errors.Conflict(f"agent {agent_id!r} already serves room {room_id!r}")
            if not self._routable(agent_id):
                raise errors.Conflict(f"agent {agent_id!r} is not available")
            if dep is not None and agent_id not in dep["agents"]:
                raise errors.Conflict(f"agent {agent_id!r} is not in department {dep['name']!r}")
            new = agent_id
        else:
            assert dep is not None
            picked = self.select_agent(dep["id"], exclude=old)
            if picked is None:
                raise errors.Conflict(f"no agent available in department {dep['name']!r}")
            new = picked
        old_agent = self.agent(old) if old in self.agents else None
        if dep is not None:
            room["department_id"] = dep["id"]
        self._serve(room, new)
        new_agent = self.agent(new)
        if old_agent is not None:
            self._emit("livechat.agent_unassigned", {"room": room, "agent": old_agent})
        self._emit("livechat.agent_assigned", {"room": room, "agent": new_agent})
        self._emit("livechat.room_transferred",
                   {"room": room, "from": old_agent, "to": new_agent, "department": dep})
        return room

    def close(self, room_id: str, closer: dict[str, Any], comment: str | None) -> dict[str, Any]:
        room = self.open_room(room_id)
        room.update(open=False, closed_at=self.clock(), closed_by=closer, close_comment=comment)
        self._emit("livechat.room_closed", {"room": room, "closed_by": closer})
        return room

    def livechat_close_room(self, room_id: str, comment: str | None = None) -> dict[str, Any]:
        if comment is not None:
            checked(lambda c: argrules.text(c, "comment", argrules.MAX_COMMENT, min_len=0),
                    comment)
        closer = {"type": "user", "id": self.app_user["id"], "app_id": self.app_id}
        return self.close(room_id, closer, comment)

    def livechat_set_agent_display(self, room_id: str, name: str,
                                   avatar_url: str | None = None) -> dict[str, Any]:
        checked(argrules.name, name, "agent display name")  # the server's rules, one copy
        if avatar_url is not None:
            checked(argrules.url, avatar_url, "avatar_url")
        room = self.open_room(room_id)
        if room["served_by"] != self.app_user["id"]:
            raise errors.PermissionDenied(
                f"only the app whose user serves room {room_id!r} may set its agent display")
        room["agent_display"] = {"name": name, "avatar_url": avatar_url}
        return room

    # -- messages ---------------------------------------------------------------------------

    def post(self, room_id: str, sender: dict[str, Any], text: str,
             app_id: str | None = None,
             display: dict[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(text, str) or not text:
            raise errors.InvalidArgument("text must be a non-empty string")
        if len(text.encode()) > MAX_MESSAGE_TEXT:
            raise errors.InvalidArgument(f"text is longer than {MAX_MESSAGE_TEXT} bytes")
        room = self.open_room(room_id)
        msg = {"id": self.next_id("m"), "room_id": room_id, "sender": sender, "app_id": app_id,
               "text": text, "ts": self.clock(), "display": display}
        self.messages.append(msg)
        self._emit("message.sent", {"message": msg, "room": room})
        return msg

    def user_sender(self, user_id: str) -> dict[str, Any]:
        u = self.user(user_id)
        if not u["active"]:
            raise errors.Conflict(f"user {user_id!r} is deactivated and cannot send messages")
        return {"type": "user", "id": user_id, "username": u["username"], "name": u["name"]}

    def messages_send(self, room_id: str, text: str) -> dict[str, Any]:
        return self.post(room_id, self.user_sender(self.app_user["id"]), text, self.app_id)

    def livechat_relay_message(self, room_id: str, text: str, alias: str,
                               avatar_url: str | None = None) -> dict[str, Any]:
        checked(argrules.name, alias, "alias")
        if avatar_url is not None:
            checked(argrules.url, avatar_url, "avatar_url")
        if self.open_room(room_id)["served_by"] != self.app_user["id"]:
            raise errors.PermissionDenied(
                f"only the app whose user serves room {room_id!r} may relay messages there")
        return self.post(room_id, self.user_sender(self.app_user["id"]), text, self.app_id,
                         {"name": alias, "avatar_url": avatar_url})

    def messages_send_as_user(self, room_id: str, user_id: str, text: str) -> dict[str, Any]:
        if self.user(user_id).get("created_by_app") != self.app_id:
            raise errors.PermissionDenied(
                f"app {self.app_id!r} did not create user {user_id!r} and cannot send as it")
        return self.post(room_id, self.user_sender(user_id), text, self.app_id)

    def messages_list(self, room_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        n = DEFAULT_MESSAGES if limit is None else limit
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LIST:
            raise errors.InvalidArgument(f"limit must be an integer 1..{MAX_LIST}")
        self.livechat_get_room(room_id)
        return [m for m in self.messages if m["room_id"] == room_id][-n:]

    # -- persistence (the host's own store, per install) ------------------------------------

    def persistence_put(self, key: str, value: Any,
                        association: dict[str, str] | None = None) -> None:
        self._key(key)
        if association is not None:
            self._association(association)
        stored(storerules.encode_value, value)  # measured as the host stores it
        self.store[key] = {"value": value, "association": association}

    @staticmethod
    def _key(key: str) -> None:
        stored(storerules.check_key, key)

    @staticmethod
    def _association(association: dict[str, str]) -> None:
        stored(storerules.check_assoc, association)

    def persistence_get(self, key: str) -> Any:
        self._key(key)
        if key not in self.store:
            raise errors.NotFound(f"no stored value under key {str(key)[:80]!r}")
        return self.store[key]["value"]

    def persistence_delete(self, key: str) -> bool:
        """Whether the key existed, as the host answers."""
        self._key(key)
        return self.store.pop(key, None) is not None

    def persistence_find(self, association: dict[str, str]) -> list[dict[str, Any]]:
        self._association(association)
        found = [{"key": k, "value": rec["value"]} for k, rec in sorted(self.store.items())
                 if rec["association"] == association][:FIND_RECORDS]
        size = sum(len(r["key"].encode()) * 6 + 32 + len(json.dumps(
            r["value"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
            for r in found)
        if size > FIND_REPLY_BYTES:
            raise errors.InvalidArgument(
                f"the records tied to this association hold more than {FIND_REPLY_BYTES} bytes,"
                " more than one reply carries: keep fewer or smaller records under one"
                " association, and read large ones by key with get")
        return found
