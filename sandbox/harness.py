"""The app-author test harness: run an app's handlers in-process, without the host.

Use it from pytest::

    from pathlib import Path
    from sandbox.harness import AppHarness

    APP_DIR = Path(__file__).resolve().parent.parent      # the folder holding app.toml

    def test_greets_the_visitor():
        h = AppHarness.from_dir(APP_DIR, settings={"greeting": "Welcome"})
        started = h.start_room(h.add_visitor(name="Ann")["id"])   # a visitor starts a chat
        h.fire("livechat.room_started", started)                  # ... and the app reacts
        assert h.calls_to("messages.send") == [{"room_id": started["room"]["id"],
                                                "text": "Welcome, Ann!"}]

What it does, and how it matches the real host:

* `from_dir` reads `app.toml` and the folder's top-level `*.py` modules and compiles them with
  the same RestrictedPython loader the confined child uses (`sandbox.loader.load_app`), so a
  construct the sandbox refuses fails here, at load time, with the same `LoadFailed` message.
* Every bridge call (`ctx.users.create(...)`, `ctx.http.post(...)`, ...) crosses a fake gate:
  it is recorded in `calls`, refused with `PermissionDenied` naming the missing permission when
  the install was not granted it (grants default to what `app.toml` asks for; pass `grants=` to
  test what your app does when the operator withholds one), and then served by a small
  in-memory chat server that behaves like the embedded one: unique case-insensitive usernames
  (`Conflict`), unknown ids (`NotFound`), agents, routing, take / transfer / close, messages,
  the persistence store, and the events those operations emit (`emitted`).
* Arguments and results cross as plain JSON data, as on the wire: your app never gets a
  reference into the fake server's state.
* Failures you cannot easily provoke are injected: `fail_next("users.create",
  QuotaExceeded("..."))` makes the next `users.create` raise it; `set_quota(action, n)` allows
  `n` successful calls and then raises `QuotaExceeded`.
* Outbound HTTP and server REST are programmable: set `http_responder` / `rest_responder`.

What it does not do: the operator's policy files (argument rules such as allowed roles or
domains, quotas with windows), audit, confinement and deadlines are the host's, not the
harness's; only the permission check and the admin-class role guardrail are modelled. Run your
app under `stockade` for those. Time is a counter (`now`), advanced one second per server write,
so tests are deterministic.
"""
from __future__ import annotations

import json
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from policies.vocabulary import ACTIONS, ADMIN_CLASS_ROLES, EVENTS, PERMISSIONS
from sandbox import errors
from sandbox.api import LIFECYCLE_HOOKS, App, Context, handler_name
from sandbox.loader import load_app
from sandbox.protocol import check_json_value
from sandbox.restricted import CappedPrint, flush_prints, reset_print_budget

__all__ = ["AppHarness", "FakeServer", "HarnessError", "HttpResponder", "RestResponder"]

_T = TypeVar("_T")
# (method, url, headers, body) -> (status, body) or (status, body, headers)
HttpResponder = Callable[[str, str, dict[str, str], "str | None"], tuple[Any, ...]]
# (method, route, body) -> the JSON result
RestResponder = Callable[[str, str, "dict[str, Any] | None"], Any]

MANIFEST_NAME = "app.toml"
SETTING_TYPES = ("string", "int", "bool", "select", "secret")
BUILTIN_ROLES = ("user", "bot", "app", "guest", "livechat-agent")
MAX_MESSAGE_TEXT = 8 * 1024
DEFAULT_MESSAGES = 50
MAX_LIST = 500
AGENT_ROLE = "livechat-agent"
ROUTABLE_OFFLINE_ROLE = "bot"  # a bot agent is routable while not-available
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# The host's persistence rules (host/bridges/persistence.py), repeated here: the harness
# imports nothing from host.
ASSOCIATION_KINDS = ("room", "user", "visitor", "message", "misc")
MAX_STORED_VALUE_BYTES = 64 * 1024
MAX_STORE_KEY = 256


class HarnessError(Exception):
    """The test set-up is wrong (bad app.toml, unknown setting, an event the host would never
    deliver, no http_responder...). Never raised to app code as a bridge error."""


def _plain(value: _T) -> _T:
    """A deep copy through JSON: what crosses the wire is data, never a shared object."""
    return cast(_T, json.loads(json.dumps(value)))


# ---------------------------------------------------------------------------------------------
# The manifest, read with just enough checking to run the app (the host validates it fully).
# ---------------------------------------------------------------------------------------------


class _Manifest:
    def __init__(self, raw: dict[str, Any], where: Path) -> None:
        def need(key: str) -> Any:
            if key not in raw:
                raise HarnessError(f"{where}: missing `{key}`")
            return raw[key]

        self.raw = raw
        self.app_id: str = need("id")
        module, sep, cls = str(need("entry")).partition(":")
        if not sep:
            raise HarnessError(f"{where}: entry must look like \"main:MyApp\"")
        self.entry_module, self.entry_class = module, cls
        self.permissions: dict[str, str] = {}
        for p in raw.get("permission", []):
            name = p.get("name")
            if name not in PERMISSIONS:
                raise HarnessError(f"{where}: unknown permission {name!r}")
            if not str(p.get("reason", "")).strip():
                raise HarnessError(f"{where}: permission {name!r} needs a reason")
            self.permissions[name] = p["reason"]
        self.events: list[str] = list(raw.get("events", []))
        for ev in self.events:
            if ev not in EVENTS:
                raise HarnessError(f"{where}: unknown event {ev!r}")
            missing = [n for n in EVENTS[ev].needs if n not in self.permissions]
            if missing:
                raise HarnessError(f"{where}: event {ev!r} needs permission(s) {missing}")
        self.settings: dict[str, dict[str, Any]] = {}
        for s in raw.get("setting", []):
            if s.get("type") not in SETTING_TYPES:
                raise HarnessError(f"{where}: setting {s.get('key')!r} has an unknown type")
            self.settings[s["key"]] = s

    def setting_value(self, key: str, value: Any) -> Any:
        spec = self.settings.get(key)
        if spec is None:
            known = sorted(self.settings)
            raise HarnessError(f"unknown setting {key!r}; app.toml declares {known}")
        kind = spec["type"]
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "select": value in spec.get("options", []),
        }.get(kind, isinstance(value, str))
        if not ok:
            raise HarnessError(f"setting {key!r} ({kind}) cannot be {value!r}")
        return value


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
        self.emitted.append((name, _plain(payload)))

    # -- users ------------------------------------------------------------------------------

    def new_user(
        self, username: str, name: str, type: str, *, email: str | None = None,
        roles: Iterable[str] = (), custom_fields: Mapping[str, str] | None = None,
        created_by_app: str | None = None, app_id: str | None = None,
    ) -> dict[str, Any]:
        if not 3 <= len(username) <= 64:
            raise errors.InvalidArgument("username must be 3..64 characters")
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
            "custom_fields": dict(custom_fields or {}), "created_by_app": created_by_app,
            "app_id": app_id, "created_at": self.clock(),
        }
        return self.users[uid]

    def user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            raise errors.NotFound(f"no user with id {user_id!r}")
        return self.users[user_id]

    def users_get(self, user_id: str) -> dict[str, Any]:
        return self.user(user_id)

    def users_get_by_username(self, username: str) -> dict[str, Any]:
        for u in self.users.values():
            if u["username"].casefold() == username.casefold():
                return u
        raise errors.NotFound(f"no user with username {username!r}")

    def users_find_by_field(self, key: str, value: str) -> list[dict[str, Any]]:
        return [u for u in self.users.values() if u["custom_fields"].get(key) == value][:MAX_LIST]

    def users_create(self, username: str, name: str, type: str, email: str | None = None,
                     roles: list[str] | None = None,
                     custom_fields: dict[str, str] | None = None) -> dict[str, Any]:
        if type not in ("user", "bot"):
            raise errors.InvalidArgument("apps may create users of type 'user' or 'bot' only")
        return self.new_user(username, name, type, email=email, roles=roles or (),
                             custom_fields=custom_fields, created_by_app=self.app_id)

    def users_set_custom_fields(self, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        u = self.user(user_id)
        for k, v in fields.items():
            if v is None:
                u["custom_fields"].pop(k, None)
            else:
                u["custom_fields"][k] = v
        return u

    def users_deactivate(self, user_id: str) -> dict[str, Any]:
        u = self.user(user_id)
        u["active"] = False
        return u

    def roles_assign(self, user_id: str, role: str) -> dict[str, Any]:
        u = self.user(user_id)
        if role not in self.roles:
            raise errors.NotFound(f"no role named {role!r}")
        u["roles"] = sorted(set(u["roles"]) | {role})
        return u

    def roles_remove(self, user_id: str, role: str) -> dict[str, Any]:
        u = self.user(user_id)
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
        u = self.user(user_id)
        if not u["active"]:
            raise errors.Conflict(f"user {user_id!r} is deactivated")
        self.agents.setdefault(user_id, {"status": "not-available", "departments": set()})
        self.roles_assign(user_id, AGENT_ROLE)
        return self.agent(user_id)

    def livechat_remove_agent(self, user_id: str) -> dict[str, Any]:
        record = self.agent(user_id)
        del self.agents[user_id]
        self.roles_remove(user_id, AGENT_ROLE)
        return record

    def livechat_set_agent_status(self, user_id: str, status: str) -> dict[str, Any]:
        if status not in ("available", "not-available"):
            raise errors.InvalidArgument("status must be 'available' or 'not-available'")
        self.agent(user_id)
        self.agents[user_id]["status"] = status
        return self.agent(user_id)

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
        closer = {"type": "user", "id": self.app_user["id"], "app_id": self.app_id}
        return self.close(room_id, closer, comment)

    def livechat_set_agent_display(self, room_id: str, name: str,
                                   avatar_url: str | None = None) -> dict[str, Any]:
        if not name or len(name) > 128:
            raise errors.InvalidArgument("agent display name must be 1..128 characters")
        if avatar_url is not None and not avatar_url.startswith(("https://", "http://")):
            raise errors.InvalidArgument("avatar_url must be an http(s) URL")
        room = self.open_room(room_id)
        if room["served_by"] != self.app_user["id"]:
            raise errors.PermissionDenied(
                f"only the app whose user serves room {room_id!r} may set its agent display")
        room["agent_display"] = {"name": name, "avatar_url": avatar_url}
        return room

    # -- messages ---------------------------------------------------------------------------

    def post(self, room_id: str, sender: dict[str, Any], text: str,
             app_id: str | None = None) -> dict[str, Any]:
        if not isinstance(text, str) or not text:
            raise errors.InvalidArgument("text must be a non-empty string")
        if len(text.encode()) > MAX_MESSAGE_TEXT:
            raise errors.InvalidArgument(f"text is longer than {MAX_MESSAGE_TEXT} bytes")
        room = self.open_room(room_id)
        msg = {"id": self.next_id("m"), "room_id": room_id, "sender": sender, "app_id": app_id,
               "text": text, "ts": self.clock()}
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

    def messages_list(self, room_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        n = DEFAULT_MESSAGES if limit is None else limit
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LIST:
            raise errors.InvalidArgument(f"limit must be 1..{MAX_LIST}")
        self.livechat_get_room(room_id)
        return [m for m in self.messages if m["room_id"] == room_id][-n:]

    # -- persistence (the host's own store, per install) ------------------------------------

    def persistence_put(self, key: str, value: Any,
                        association: dict[str, str] | None = None) -> None:
        self._key(key)
        if association is not None:
            self._association(association)
        if len(json.dumps(value, sort_keys=True).encode()) > MAX_STORED_VALUE_BYTES:
            raise errors.InvalidArgument(f"value larger than {MAX_STORED_VALUE_BYTES} bytes")
        self.store[key] = {"value": value, "association": association}

    @staticmethod
    def _key(key: str) -> None:
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_STORE_KEY:
            raise errors.InvalidArgument(f"key must be a string of 1..{MAX_STORE_KEY} characters")

    @staticmethod
    def _association(association: dict[str, str]) -> None:
        if set(association) != {"kind", "id"} or association["kind"] not in ASSOCIATION_KINDS:
            raise errors.InvalidArgument(
                f"association must be {{'kind', 'id'}} with kind one of {ASSOCIATION_KINDS}")
        if not isinstance(association["id"], str) or not association["id"]:
            raise errors.InvalidArgument("association id must be a non-empty string")

    def persistence_get(self, key: str) -> Any:
        self._key(key)
        if key not in self.store:
            raise errors.NotFound(f"no stored value for key {key!r}")
        return self.store[key]["value"]

    def persistence_delete(self, key: str) -> None:
        self._key(key)
        self.store.pop(key, None)

    def persistence_find(self, association: dict[str, str]) -> list[dict[str, Any]]:
        self._association(association)
        return [{"key": k, "value": rec["value"]} for k, rec in sorted(self.store.items())
                if rec["association"] == association]


# ---------------------------------------------------------------------------------------------
# The harness: manifest + loader + fake gate + helpers for tests.
# ---------------------------------------------------------------------------------------------


class AppHarness:
    """Load an app from its folder and drive it like the host would.

    Attributes you will use in tests:

    * `app`, `ctx` — the loaded app instance and the context its handlers receive;
    * `calls` — every bridge call attempted, as `(action, args)` in order (denied ones too);
      `calls_to(action)` lists the args of one action;
    * `errors` — `(action, code)` for each call that raised (denials, injected failures,
      server errors);
    * `emitted` — `(event, payload)` for each event the fake server emitted (whether caused by
      your app or by a helper such as `start_room`); `deliver()` hands the ones your app
      subscribes to back to it, as the host would;
    * `http_requests` — each outbound request as `{"method", "url", "headers", "body"}`;
    * `server` — the `FakeServer` (users, rooms, visitors, messages, store);
    * `app_user` — the app's own user (`app.<id>`, type `app`), created at install by the host;
    * `logs` — what the app printed.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        modules: dict[str, str],
        *,
        grants: Iterable[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        where: Path | None = None,
    ) -> None:
        self.manifest = _Manifest(manifest, where or Path(MANIFEST_NAME))
        self.app_id = self.manifest.app_id
        asked = set(self.manifest.permissions)
        chosen = asked if grants is None else set(grants)
        for g in chosen:
            if g not in PERMISSIONS:
                raise HarnessError(f"unknown permission {g!r}; known: {sorted(PERMISSIONS)}")
            if g not in asked:
                raise HarnessError(
                    f"grant {g!r} is not asked for in app.toml; the host never grants more than "
                    "the manifest asks (add a [[permission]] entry with a reason)")
        self.grants: frozenset[str] = frozenset(chosen)
        self.settings = self._settings(settings or {})
        self.now = 1_700_000_000.0
        self.server = FakeServer(self.app_id, self._tick, str(manifest.get("name", "")))
        self.app_user: dict[str, Any] = self.server.app_user
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[tuple[str, str]] = []
        self.http_requests: list[dict[str, Any]] = []
        self.http_responder: HttpResponder | None = None
        self.http_domains: set[str] | None = None  # None: any host (policy is not modelled)
        self.rest_responder: RestResponder | None = None
        self.logs: list[str] = []
        self._failures: dict[str, deque[errors.StockadeError]] = {}
        self._quotas: dict[str, list[int]] = {}  # action -> [used, limit]
        self._delivered = 0
        self.app: App = load_app(modules, self.manifest.entry_module, self.manifest.entry_class)
        self.ctx = Context(self, self.app_id, self.settings, self.app_user["id"])

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        grants: Iterable[str] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> AppHarness:
        """Read `path/app.toml` and `path/*.py` and load the app through the sandbox loader.

        `grants`: the permissions the operator granted (default: all the manifest asks for).
        `settings`: values for the manifest's settings (defaults fill the rest).
        Raises `sandbox.loader.LoadFailed` when RestrictedPython refuses a module.
        """
        folder = Path(path)
        try:
            raw = tomllib.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HarnessError(f"no {MANIFEST_NAME} in {folder}") from None
        except tomllib.TOMLDecodeError as exc:
            raise HarnessError(f"{folder / MANIFEST_NAME} is not valid TOML: {exc}") from None
        modules = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.py"))}
        return cls(raw, modules, grants=grants, settings=settings, where=folder / MANIFEST_NAME)

    def _settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, spec in self.manifest.settings.items():
            if "default" in spec:
                out[key] = spec["default"]
        for key, value in given.items():
            out[key] = self.manifest.setting_value(key, value)
        missing = [k for k, s in self.manifest.settings.items() if s.get("required")
                   and out.get(k) in (None, "")]
        if missing:
            raise HarnessError(f"required setting(s) {missing} have no value; pass settings=")
        return out

    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    # -- the fake gate (the Transport the bridges call) -------------------------------------

    def call(self, action: str, args: dict[str, Any]) -> Any:
        """The bridges' transport: check like the gate, then serve from the fake server."""
        self.calls.append((action, _plain(args) if _is_json(args) else dict(args)))
        try:
            result = self._gate(action, args)
        except errors.StockadeError as exc:
            self.errors.append((action, exc.code))
            raise
        return _plain(result)

    def _gate(self, action: str, args: dict[str, Any]) -> Any:
        spec = ACTIONS.get(action)
        if spec is None:
            raise errors.PermissionDenied(f"unknown action {action!r}")
        try:
            check_json_value(args)
        except ValueError as exc:
            raise errors.InvalidArgument(f"{action}: arguments are not plain data: {exc}") from None
        missing = [a for a in spec.args if a not in args]
        extra = [a for a in args if a not in spec.args + spec.optional]
        if missing or extra:
            raise errors.InvalidArgument(f"{action}: missing {missing}, unexpected {extra}")
        if spec.permission not in self.grants:
            raise errors.PermissionDenied(
                f"{action} needs the permission {spec.permission!r}, which this install was not "
                f"granted; declare it in app.toml with a reason and ask the operator to grant it")
        roles = [args["role"]] if "role" in args else list(args.get("roles") or [])
        admin = [r for r in roles if str(r).casefold() in ADMIN_CLASS_ROLES]
        if admin:
            raise errors.PermissionDenied(
                f"guardrail: apps may never grant admin-class roles ({', '.join(admin)})")
        queued = self._failures.get(action)
        if queued:
            raise queued.popleft()
        quota = self._quotas.get(action)
        if quota is not None and quota[0] >= quota[1]:
            raise errors.QuotaExceeded(
                f"quota for {action} is full ({quota[1]} per window, set by the harness)")
        result = self._serve(action, args)
        if quota is not None:
            quota[0] += 1
        return result

    def _serve(self, action: str, args: dict[str, Any]) -> Any:
        a = _plain(args)
        if action == "http.request":
            return self._http(**a)
        if action == "rest.call":
            if self.rest_responder is None:
                raise HarnessError("the app called rest.call: set harness.rest_responder = "
                                   "lambda method, route, body: {...}")
            return self.rest_responder(a["method"], a["route"], a.get("body"))
        method: Callable[..., Any] = getattr(self.server, action.replace(".", "_"))
        return method(**a)

    def _http(self, method: str, url: str, headers: dict[str, str] | None = None,
              body: str | None = None) -> dict[str, Any]:
        parts = urlsplit(url)
        if method.upper() not in HTTP_METHODS or parts.scheme not in ("http", "https"):
            raise errors.InvalidArgument("http.request needs a known method and an http(s) URL")
        host = (parts.hostname or "").lower()
        if self.http_domains is not None and host not in self.http_domains:
            raise errors.PermissionDenied(f"policy: domains: host {host!r} not listed")
        sent_headers = dict(headers or {})
        self.http_requests.append({"method": method.upper(), "url": url,
                                   "headers": dict(sent_headers), "body": body})
        if self.http_responder is None:
            raise HarnessError("the app made an HTTP request: set harness.http_responder = "
                               "lambda method, url, headers, body: (200, '{}')")
        answer = self.http_responder(method.upper(), url, sent_headers, body)
        status, text = int(answer[0]), str(answer[1])
        resp_headers = dict(answer[2]) if len(answer) > 2 else {}
        return {"status": status, "headers": resp_headers, "body": text}

    # -- controlling the fake gate ------------------------------------------------------------

    def fail_next(self, action: str, error: errors.StockadeError | type[errors.StockadeError]
                  ) -> None:
        """Make the next call of `action` raise `error` (after the permission check, as a real
        quota or server failure would). Queue several by calling it several times."""
        if action not in ACTIONS:
            raise HarnessError(f"unknown action {action!r}")
        exc = error(f"{action} failed (injected by the harness)") if isinstance(error, type) \
            else error
        self._failures.setdefault(action, deque()).append(exc)

    def set_quota(self, action: str, limit: int) -> None:
        """Allow `limit` more successful calls of `action`, then raise QuotaExceeded."""
        if action not in ACTIONS:
            raise HarnessError(f"unknown action {action!r}")
        self._quotas[action] = [0, limit]

    def calls_to(self, action: str) -> list[dict[str, Any]]:
        """The args of every attempted call of `action`, in order."""
        return [args for name, args in self.calls if name == action]

    def actions(self) -> list[str]:
        """The action names of every attempted call, in order."""
        return [name for name, _ in self.calls]

    # -- events and lifecycle ---------------------------------------------------------------

    def fire(self, event: str, payload: Mapping[str, Any] | None = None) -> Any:
        """Deliver `event` to the app's handler and return what it returned.

        Refuses (HarnessError) what the host would never deliver: an event not listed in
        app.toml's `events`, or one whose needed permissions were not granted. Exceptions from
        the handler propagate to your test unchanged.
        """
        spec = EVENTS.get(event)
        if spec is None:
            raise HarnessError(f"unknown event {event!r}; known: {sorted(EVENTS)}")
        if event not in self.manifest.events:
            raise HarnessError(f"app.toml does not list {event!r} in `events`: "
                               "the host would never deliver it")
        missing = [p for p in spec.needs if p not in self.grants]
        if missing:
            raise HarnessError(f"{event!r} needs {missing}, not granted: the host would not "
                               "deliver it")
        return self._run(handler_name(event), payload or {}, required=True)

    def _run(self, name: str, payload: Mapping[str, Any], *, required: bool) -> Any:
        method = getattr(self.app, name, None)
        if method is None:
            if required:
                raise HarnessError(f"the app class has no handler {name}(self, ctx, event)")
            return None
        check_json_value(dict(payload))
        previous = CappedPrint.sink
        CappedPrint.sink = lambda text, dropped: self.logs.append(text)
        reset_print_budget()
        try:
            result = method(self.ctx, _plain(dict(payload)))
        finally:
            flush_prints()
            CappedPrint.sink = previous
        try:
            check_json_value(result)
        except ValueError as exc:
            raise HarnessError(f"{name} returned data that is not plain JSON: {exc}") from None
        return result

    def deliver(self, limit: int = 100) -> list[tuple[str, Any]]:
        """Fire, in order, every emitted event not yet delivered that the app subscribes to
        (including events its handlers cause meanwhile). Returns `(event, result)` pairs."""
        out: list[tuple[str, Any]] = []
        while self._delivered < len(self.server.emitted):
            if len(out) >= limit:
                raise HarnessError(f"more than {limit} events delivered: an event loop?")
            name, payload = self.server.emitted[self._delivered]
            self._delivered += 1
            if name in self.manifest.events and all(p in self.grants for p in EVENTS[name].needs):
                out.append((name, self.fire(name, payload)))
        return out

    @property
    def emitted(self) -> list[tuple[str, dict[str, Any]]]:
        return self.server.emitted

    def emitted_named(self, event: str) -> list[dict[str, Any]]:
        """Payloads of the emitted events named `event`, in order."""
        return [p for n, p in self.server.emitted if n == event]

    def skip_emitted(self) -> None:
        """Mark every event emitted so far as delivered (e.g. after test set-up)."""
        self._delivered = len(self.server.emitted)

    def lifecycle(self, hook: str, event: Mapping[str, Any] | None = None) -> Any:
        """Call `on_<hook>` if the app defines it (hooks are optional), with
        `{"hook": hook, **event}` as the host does."""
        if hook not in LIFECYCLE_HOOKS:
            raise HarnessError(f"unknown lifecycle hook {hook!r}; known: {LIFECYCLE_HOOKS}")
        return self._run(f"on_{hook}", {"hook": hook, **(event or {})}, required=False)

    def install(self) -> Any:
        return self.lifecycle("install")

    def enable(self) -> Any:
        return self.lifecycle("enable")

    def disable(self) -> Any:
        return self.lifecycle("disable")

    def update(self) -> Any:
        return self.lifecycle("update")

    def uninstall(self) -> Any:
        """Call `on_uninstall`, then drop the app's stored data as the host does."""
        result = self.lifecycle("uninstall")
        self.server.store.clear()
        return result

    def change_settings(self, **values: Any) -> Any:
        """Change settings (checked against app.toml) and call `on_settings_changed` with
        `{"hook": "settings_changed", "changed": [keys]}`."""
        self.settings = self._settings({**self.settings, **values})
        self.ctx = Context(self, self.app_id, self.settings, self.app_user["id"])
        return self.lifecycle("settings_changed", {"changed": sorted(values)})

    # -- setting up the world (operator/visitor actions: not gated, not in `calls`) ----------

    def add_user(self, username: str, name: str | None = None, *, type: str = "user",
                 roles: Iterable[str] = (), custom_fields: Mapping[str, str] | None = None,
                 email: str | None = None, agent: bool = False, status: str = "available",
                 departments: Iterable[str] = ()) -> dict[str, Any]:
        """A user made by an operator (not by the app); `agent=True` makes it a livechat agent
        with `status`, in `departments` (names or ids)."""
        u = self.server.new_user(username, name or username, type, email=email, roles=roles,
                                 custom_fields=custom_fields)
        if agent:
            self.make_agent(u["id"], status=status, departments=departments)
        return _plain(self.server.users[u["id"]])

    def make_agent(self, user_id: str, *, status: str = "available",
                   departments: Iterable[str] = ()) -> dict[str, Any]:
        """Make a user (e.g. `app_user["id"]`) a livechat agent, as an operator would."""
        self.server.livechat_add_agent(user_id)
        self.server.livechat_set_agent_status(user_id, status)
        for d in departments:
            self.server.agents[user_id]["departments"].add(self.server.department(d)["id"])
        return _plain(self.server.agent(user_id))

    def add_department(self, name: str) -> dict[str, Any]:
        dep_id = self.server.next_id("d")
        self.server.departments[dep_id] = {"id": dep_id, "name": name, "enabled": True}
        return _plain(self.server.department(dep_id))

    def add_visitor(self, name: str | None = None, email: str | None = None,
                    custom_fields: Mapping[str, str] | None = None) -> dict[str, Any]:
        vid = self.server.next_id("v")
        self.server.visitors[vid] = {
            "id": vid, "token": f"token-{vid}", "name": name, "email": email,
            "custom_fields": dict(custom_fields or {}), "created_at": self._tick()}
        return _plain(self.server.visitors[vid])

    def start_room(self, visitor_id: str, department: str | None = None, *,
                   custom_fields: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A visitor starts a conversation: the room is created and routed like the embedded
        server does (to the least busy routable agent, if any). Returns the
        `livechat.room_started` payload (`{"room", "visitor"}`, the room as created, before
        routing). The embedded server's rooms start without custom fields; `custom_fields`
        stands in for a server adapter that sets them."""
        self.server.livechat_create_room(visitor_id, department, custom_fields=custom_fields)
        return self.emitted_named("livechat.room_started")[-1]

    def visitor_says(self, room_id: str, text: str) -> dict[str, Any]:
        """The room's visitor writes; returns the `message.sent` payload."""
        room = self.server.livechat_get_room(room_id)
        v = self.server.livechat_get_visitor(room["visitor_id"])
        sender = {"type": "visitor", "id": v["id"], "username": None, "name": v["name"]}
        self.server.post(room_id, sender, text)
        return self.emitted_named("message.sent")[-1]

    def agent_says(self, user_id: str, room_id: str, text: str) -> dict[str, Any]:
        """A user (an agent at a console) writes; returns the `message.sent` payload."""
        self.server.post(room_id, self.server.user_sender(user_id), text)
        return self.emitted_named("message.sent")[-1]

    def close_room(self, room_id: str, by_visitor: bool = False) -> dict[str, Any]:
        """Someone other than the app closes the room (the visitor, or the serving agent);
        returns the `livechat.room_closed` payload."""
        room = self.server.livechat_get_room(room_id)
        if by_visitor:
            closer = {"type": "visitor", "id": room["visitor_id"], "app_id": None}
        else:
            closer = {"type": "user", "id": room["served_by"], "app_id": None}
        self.server.close(room_id, closer, None)
        return self.emitted_named("livechat.room_closed")[-1]

    def stored(self, key: str) -> Any:
        """The value the app stored under `key` (KeyError if none)."""
        return _plain(self.server.store[key]["value"])


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
