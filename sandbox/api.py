"""The app-facing API: what app authors program against (`from stockade import App, ...`).

An app is a class deriving from `App`. The host calls its handlers:

* events: `on_<event name with dots as underscores>(self, ctx, event)`, e.g.
  `on_livechat_room_started(self, ctx, event)` where `event` is a plain dict
  (`{"room": {...}, "visitor": {...}}`);
* the pre-send hook `on_message_pre_send(self, ctx, event)` may return `{"prevent": True,
  "reason": "..."}` to stop a message or `{"text": "..."}` to change it (or None to pass); a
  text the server cannot store (empty, over 8 KiB of UTF-8, or holding a NUL) stops the
  message, recorded as this app's prevention;
* lifecycle hooks: `on_install`, `on_enable`, `on_disable`, `on_update`, `on_uninstall`,
  `on_settings_changed` (each `(self, ctx, event)`).

`ctx` gives the bridges: `ctx.users`, `ctx.roles`, `ctx.livechat`, `ctx.messages`,
`ctx.store` (persistence), `ctx.http`, `ctx.rest`, `ctx.settings` (a dict), `ctx.app_id` and
`ctx.app_user_id` (the app's own user). Every bridge
call crosses the host's gate; a refusal raises `PermissionDenied` (naming the missing
permission or the rule), `QuotaExceeded`, `NotFound`, `Conflict` or `InvalidArgument`. A bridge
call never returns a silent `None` for a refusal.
"""
from __future__ import annotations

import sys
from typing import Any, Protocol

from sandbox import errors
from sandbox.restricted import Facade, register_app_base, register_module

API_VERSION = 1


class Transport(Protocol):
    """How a bridge call reaches the host (the channel in a child, a fake in the harness)."""

    def call(self, action: str, args: dict[str, Any]) -> Any: ...


def _clean(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v is not None}


class _Bridge:
    __slots__ = ("_t",)

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def _call(self, action: str, **args: Any) -> Any:
        return self._t.call(action, _clean(args))


class Users(_Bridge):
    """Users of the chat server. Permissions: users.read, users.create, users.update,
    users.deactivate."""

    __slots__ = ()

    def get(self, user_id: str) -> dict[str, Any]:
        """The user with this id. Raises NotFound. Needs `users.read`."""
        return self._call("users.get", user_id=user_id)  # type: ignore[no-any-return]

    def get_by_username(self, username: str) -> dict[str, Any]:
        """The user with this username (case-insensitive). Raises NotFound. Needs `users.read`."""
        return self._call("users.get_by_username", username=username)  # type: ignore[no-any-return]

    def find_by_field(self, key: str, value: str) -> list[dict[str, Any]]:
        """Users whose custom field `key` equals `value` (may be empty). Needs `users.read`."""
        return self._call("users.find_by_field", key=key, value=value)  # type: ignore[no-any-return]

    def create(
        self,
        username: str,
        name: str,
        type: str = "user",
        email: str | None = None,
        roles: list[str] | None = None,
        custom_fields: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a user of type `user` or `bot`, marked as created by this app.

        Needs `users.create`; the policy decides which types and roles are allowed and how many
        per window (QuotaExceeded when the window is full). Raises Conflict for a taken
        username or email.
        """
        return self._call(  # type: ignore[no-any-return]
            "users.create", username=username, name=name, type=type, email=email,
            roles=roles, custom_fields=custom_fields,
        )

    def set_custom_fields(self, user_id: str, fields: dict[str, str]) -> dict[str, Any]:
        """Write custom fields (only keys the policy lists). Needs `users.update`."""
        return self._call("users.set_custom_fields", user_id=user_id, fields=fields)  # type: ignore[no-any-return]

    def deactivate(self, user_id: str) -> dict[str, Any]:
        """Deactivate a user this app created. Needs `users.deactivate`."""
        return self._call("users.deactivate", user_id=user_id)  # type: ignore[no-any-return]


class Roles(_Bridge):
    """Role assignment. Needs `roles.assign`; admin-class roles are never allowed."""

    __slots__ = ()

    def assign(self, user_id: str, role: str) -> dict[str, Any]:
        """Give `role` to the user (only roles the policy lists; never admin-class roles)."""
        return self._call("roles.assign", user_id=user_id, role=role)  # type: ignore[no-any-return]

    def remove(self, user_id: str, role: str) -> dict[str, Any]:
        """Take `role` from the user (same rules as assign)."""
        return self._call("roles.remove", user_id=user_id, role=role)  # type: ignore[no-any-return]


class Livechat(_Bridge):
    """Omnichannel: agents, rooms, visitors, routing and agent display."""

    __slots__ = ()

    def add_agent(self, user_id: str) -> dict[str, Any]:
        """Make the user a livechat agent. Needs `livechat.agents`."""
        return self._call("livechat.add_agent", user_id=user_id)  # type: ignore[no-any-return]

    def remove_agent(self, user_id: str) -> dict[str, Any]:
        """Stop the user being a livechat agent. Needs `livechat.agents`."""
        return self._call("livechat.remove_agent", user_id=user_id)  # type: ignore[no-any-return]

    def set_agent_status(self, user_id: str, status: str) -> dict[str, Any]:
        """Set `available` or `not-available`. Needs `livechat.agents`."""
        return self._call("livechat.set_agent_status", user_id=user_id, status=status)  # type: ignore[no-any-return]

    def add_department_agent(self, department: str, user_id: str) -> dict[str, Any]:
        """Put an agent this app created into a department (id or name). Needs
        `livechat.agents`."""
        return self._call(  # type: ignore[no-any-return]
            "livechat.add_department_agent", department=department, user_id=user_id
        )

    def remove_department_agent(self, department: str, user_id: str) -> dict[str, Any]:
        """Take an agent this app created out of a department. Needs `livechat.agents`."""
        return self._call(  # type: ignore[no-any-return]
            "livechat.remove_department_agent", department=department, user_id=user_id
        )

    def get_department(self, department: str) -> dict[str, Any]:
        """A department by id, else by name. Needs `livechat.read`."""
        return self._call("livechat.get_department", department=department)  # type: ignore[no-any-return]

    def list_departments(self) -> list[dict[str, Any]]:
        """Every department (`id`, `name`, `enabled`, `agents`). Needs `livechat.read`."""
        return self._call("livechat.list_departments")  # type: ignore[no-any-return]

    def get_room(self, room_id: str) -> dict[str, Any]:
        """A livechat room. Needs `livechat.read`."""
        return self._call("livechat.get_room", room_id=room_id)  # type: ignore[no-any-return]

    def list_rooms(self, open: bool | None = None) -> list[dict[str, Any]]:
        """Livechat rooms, optionally only open (True) or closed (False). Needs `livechat.read`."""
        return self._call("livechat.list_rooms", open=open)  # type: ignore[no-any-return]

    def get_visitor(self, visitor_id: str) -> dict[str, Any]:
        """A visitor (guest). Needs `livechat.read`."""
        return self._call("livechat.get_visitor", visitor_id=visitor_id)  # type: ignore[no-any-return]

    def create_room(self, visitor_id: str, department: str | None = None) -> dict[str, Any]:
        """Open a room for a visitor; routing picks an agent. Needs `livechat.write`."""
        return self._call("livechat.create_room", visitor_id=visitor_id, department=department)  # type: ignore[no-any-return]

    def take_room(self, room_id: str, agent_id: str) -> dict[str, Any]:
        """Assign the room to an agent (manual take). Needs `livechat.write`."""
        return self._call("livechat.take_room", room_id=room_id, agent_id=agent_id)  # type: ignore[no-any-return]

    def transfer_room(
        self, room_id: str, department: str | None = None, agent_id: str | None = None
    ) -> dict[str, Any]:
        """Transfer to a department (routing picks the agent) or to an agent. Needs
        `livechat.write`."""
        return self._call(  # type: ignore[no-any-return]
            "livechat.transfer_room", room_id=room_id, department=department, agent_id=agent_id
        )

    def close_room(self, room_id: str, comment: str | None = None) -> dict[str, Any]:
        """Close the room. Needs `livechat.write`."""
        return self._call("livechat.close_room", room_id=room_id, comment=comment)  # type: ignore[no-any-return]

    def set_agent_display(
        self, room_id: str, name: str, avatar_url: str | None = None
    ) -> dict[str, Any]:
        """Show the visitor an external agent's name/avatar in a room this app's user serves.

        The least-privilege path for integrations with an outside agent system: no user
        creation needed. Needs `livechat.agent-display`.
        """
        return self._call(  # type: ignore[no-any-return]
            "livechat.set_agent_display", room_id=room_id, name=name, avatar_url=avatar_url
        )

    def relay_message(
        self, room_id: str, text: str, alias: str, avatar_url: str | None = None
    ) -> dict[str, Any]:
        """Send `text` as the app user, shown to the visitor as `alias` (and `avatar_url`),
        Rocket.Chat's per-message display. Only in a room this app's user serves; staff and
        the audit still see the app user. Needs `livechat.agent-display`."""
        return self._call(  # type: ignore[no-any-return]
            "livechat.relay_message", room_id=room_id, text=text, alias=alias,
            avatar_url=avatar_url,
        )


class Messages(_Bridge):
    """Room messages: sent as the app's own user, or (`send_as`) as a user the app created."""

    __slots__ = ()

    def send(self, room_id: str, text: str) -> dict[str, Any]:
        """Send `text` to the room as the app user. Needs `messages.send`."""
        return self._call("messages.send", room_id=room_id, text=text)  # type: ignore[no-any-return]

    def send_as(self, user_id: str, room_id: str, text: str) -> dict[str, Any]:
        """Send `text` as a user this app created (e.g. its bot account); refused for any
        other user. Needs `messages.send-as-own-users`."""
        return self._call(  # type: ignore[no-any-return]
            "messages.send_as_user", room_id=room_id, user_id=user_id, text=text
        )

    def list(self, room_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The room's messages, oldest first. Needs `messages.read`."""
        return self._call("messages.list", room_id=room_id, limit=limit)  # type: ignore[no-any-return]


class Store(_Bridge):
    """A private key-value store for this install (removed at uninstall). Needs `persistence`.

    `association` ties a record to something, e.g. `{"kind": "room", "id": room_id}`.
    """

    __slots__ = ()

    def put(self, key: str, value: Any, association: dict[str, str] | None = None) -> None:
        """Store `value` (any JSON value but None) under `key`, replacing what was there."""
        if value is None:  # dropped with the other absent arguments, it read as "missing"
            raise errors.InvalidArgument("persistence.put: value None is not stored; "
                                         "delete(key) removes a record")
        self._call("persistence.put", key=key, value=value, association=association)

    def get(self, key: str) -> Any:
        """The stored value; raises NotFound when the key does not exist."""
        return self._call("persistence.get", key=key)

    def delete(self, key: str) -> None:
        self._call("persistence.delete", key=key)

    def find(self, association: dict[str, str]) -> list[dict[str, Any]]:
        """Records tied to `association`, as `[{"key": ..., "value": ...}]`: the first 100 by
        key. Raises InvalidArgument when those records hold more than one reply carries
        (~960 KiB of values as JSON, keys counted at 6 bytes a byte): nothing is cut
        silently; keep fewer or smaller records under one association, or `get` large ones
        by key."""
        return self._call("persistence.find", association=association)  # type: ignore[no-any-return]


class Http(_Bridge):
    """Outbound HTTP performed by the host (the child has no network). Needs `http`; the
    policy lists the domains; private and loopback addresses are refused unless named."""

    __slots__ = ()

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> dict[str, Any]:
        """Returns `{"status": int, "headers": {...}, "body": str}`."""
        return self._call(  # type: ignore[no-any-return]
            "http.request", method=method, url=url, headers=headers, body=body
        )

    def get(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", url, headers=headers)

    def post(
        self, url: str, body: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return self.request("POST", url, headers=headers, body=body)


class Rest(_Bridge):
    """In-process calls to allow-listed server REST routes, as the app's own server user.
    A route that does what a bridge action does is decided as that action (its permission,
    rules and quotas); a refusal raises, a server answer comes back as {status, body}.
    Needs `server.rest`."""

    __slots__ = ()

    def call(self, method: str, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """`route` is a plain path (`/api/v1/users.info`); for GET, `body` holds the query
        parameters: text as it is, `True` as `true`, numbers, objects and lists as JSON
        (`{"fields": {"customFields": 1}}`), `None` left out. Returns
        `{"status": int, "body": {...}}` (Rocket.Chat-style JSON)."""
        return self._call("rest.call", method=method, route=route, body=body)  # type: ignore[no-any-return]


class Context:
    """What every handler receives: the bridges and this install's settings."""

    __slots__ = (
        "app_id",
        "app_user_id",
        "http",
        "livechat",
        "messages",
        "rest",
        "roles",
        "settings",
        "store",
        "users",
    )

    def __init__(self, transport: Transport, app_id: str, settings: dict[str, Any],
                 app_user_id: str | None = None) -> None:
        self.app_id = app_id
        # The app's own user (created at install): the sender of its messages, and the agent
        # it serves rooms as. Knowing it needs no users.read permission.
        self.app_user_id = app_user_id
        self.settings = dict(settings)
        self.users = Users(transport)
        self.roles = Roles(transport)
        self.livechat = Livechat(transport)
        self.messages = Messages(transport)
        self.store = Store(transport)
        self.http = Http(transport)
        self.rest = Rest(transport)


class App:
    """Base class of every app. Subclass it and define `on_...` handlers."""


register_app_base(App)


def handler_name(event: str) -> str:
    """`livechat.room_started` -> `on_livechat_room_started`.

    Interned: CPython 3.11 keys its attribute-lookup cache by the name string's address, and
    the cache keeps the string alive. A new string per event would take a new cache slot and
    keep one more string each time; in a child serving thousands of events that grew its
    private memory by ~0.35 MiB before it levelled off (docs/BENCH.md).
    """
    return sys.intern("on_" + event.replace(".", "_").replace("-", "_"))


LIFECYCLE_HOOKS = ("install", "enable", "disable", "update", "uninstall", "settings_changed")

register_module(
    "stockade",
    Facade(
        "stockade",
        {
            "App": App,
            "API_VERSION": API_VERSION,
            "StockadeError": errors.StockadeError,
            "PermissionDenied": errors.PermissionDenied,
            "QuotaExceeded": errors.QuotaExceeded,
            "NotFound": errors.NotFound,
            "Conflict": errors.Conflict,
            "InvalidArgument": errors.InvalidArgument,
            "Timeout": errors.Timeout,
        },
    ),
)
