"""The contract between the host's gate and a chat server.

`ServerAdapter` has one method per server action in `policies/vocabulary.py` (the action name
with `.` replaced by `_`; arguments named as in `ActionSpec.args` / `.optional`), each taking the
acting `Caller` first, and `op_id` (keyword) on writes. Methods return plain JSON-able dicts
(`host.server.shapes`) and raise `host.server.errors.ServerError` subclasses. `ACTION_METHODS`
maps each action to its method so the gate can dispatch without string munging.

The actions `persistence.*`, `http.request` and `rest.call` are the host's own (host.db, outbound
HTTP, `host.server.rest.RestDispatcher`) and are not part of this protocol.

Besides the actions, the protocol carries what the host itself needs: crash reconciliation
(`was_applied`), facts for the policy engine (`is_privileged`, `user_created_by`, seat counts),
app users, uninstall clean-up, events and the pre-send hook point.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from host.server.events import PreSendHook, Subscriber
from host.server.principals import Caller, Operator, Principal
from host.server.shapes import (
    Agent,
    Department,
    Message,
    Role,
    Room,
    User,
    UserStanding,
    Visitor,
)

__all__ = ["ACTION_METHODS", "HOST_ACTIONS", "Caller", "Operator", "Principal", "ServerAdapter"]

# Vocabulary actions served by the host itself, not by a ServerAdapter.
HOST_ACTIONS = frozenset({
    "persistence.put", "persistence.get", "persistence.delete", "persistence.find",
    "http.request", "rest.call",
})

ACTION_METHODS: dict[str, str] = {
    a: a.replace(".", "_")
    for a in (
        "users.get", "users.get_by_username", "users.find_by_field", "users.create",
        "users.set_custom_fields", "users.deactivate", "roles.assign", "roles.remove",
        "livechat.add_agent", "livechat.remove_agent", "livechat.set_agent_status",
        "livechat.add_department_agent", "livechat.remove_department_agent",
        "livechat.get_department", "livechat.list_departments",
        "livechat.get_room", "livechat.list_rooms", "livechat.get_visitor",
        "livechat.create_room", "livechat.take_room", "livechat.transfer_room",
        "livechat.close_room", "livechat.set_agent_display", "livechat.relay_message",
        "messages.send", "messages.send_as_user", "messages.list",
    )
}


class ServerAdapter(Protocol):
    """What the gate calls. Reads ignore `caller` today but take it so every action has one
    calling convention; writes stamp or check it as their docstrings say."""

    # -- users.read / users.create / users.update / users.deactivate --------------------------
    def users_get(self, caller: Caller, user_id: str) -> User:
        """The user with this id. NotFound."""
        ...

    def users_get_by_username(self, caller: Caller, username: str) -> User:
        """The user with this username (case-insensitive). NotFound."""
        ...

    def users_find_by_field(self, caller: Caller, key: str, value: str) -> list[User]:
        """Users whose custom field `key` equals `value` (indexed; at most 500)."""
        ...

    def users_create(
        self, caller: Caller, username: str, name: str, type: str, email: str | None = None,
        roles: Sequence[str] = (), custom_fields: Mapping[str, str] | None = None, *, op_id: str,
    ) -> User:
        """Create a `user` or `bot` stamped `created_by_app=caller.app_id`. Conflict on a taken
        username/email; NotFound on an unknown role; Forbidden on a privileged role."""
        ...

    def users_set_custom_fields(
        self, caller: Caller, user_id: str, fields: Mapping[str, str | None], *, op_id: str
    ) -> User:
        """Merge custom fields (a None value removes the key)."""
        ...

    def users_deactivate(self, caller: Caller, user_id: str, *, op_id: str) -> User:
        """Deactivate a user (idempotent)."""
        ...

    # -- roles.assign ---------------------------------------------------------------------
    def roles_assign(self, caller: Caller, user_id: str, role: str, *, op_id: str) -> User:
        """Give a role (idempotent). Forbidden for a privileged role."""
        ...

    def roles_remove(self, caller: Caller, user_id: str, role: str, *, op_id: str) -> User:
        """Take a role (idempotent). Forbidden for a privileged role."""
        ...

    # -- livechat.agents --------------------------------------------------------------------
    def livechat_add_agent(self, caller: Caller, user_id: str, *, op_id: str) -> Agent:
        """Make a user an agent (not-available until set)."""
        ...

    def livechat_remove_agent(self, caller: Caller, user_id: str, *, op_id: str) -> Agent:
        """Stop a user being an agent; returns the removed record."""
        ...

    def livechat_add_department_agent(
        self, caller: Caller, department: str, user_id: str, *, op_id: str
    ) -> Department:
        """Put an agent into a department (by id or name); idempotent. NotFound."""
        ...

    def livechat_remove_department_agent(
        self, caller: Caller, department: str, user_id: str, *, op_id: str
    ) -> Department:
        """Take an agent out of a department; idempotent. NotFound."""
        ...

    def livechat_get_department(self, caller: Caller, department: str) -> Department:
        """A department by id, else by name (case-insensitive). NotFound."""
        ...

    def livechat_list_departments(self, caller: Caller) -> list[Department]:
        """Every department, by name (at most 500)."""
        ...

    def livechat_set_agent_status(
        self, caller: Caller, user_id: str, status: str, *, op_id: str
    ) -> Agent:
        """`available` or `not-available`."""
        ...

    # -- livechat.read ----------------------------------------------------------------------
    def livechat_get_room(self, caller: Caller, room_id: str) -> Room:
        """A room. NotFound."""
        ...

    def livechat_list_rooms(self, caller: Caller, open: bool | None = None) -> list[Room]:
        """Rooms, newest first, at most 500; `open` filters."""
        ...

    def livechat_get_visitor(self, caller: Caller, visitor_id: str) -> Visitor:
        """A visitor. NotFound."""
        ...

    # -- livechat.write ---------------------------------------------------------------------
    def livechat_create_room(
        self, caller: Caller, visitor_id: str, department: str | None = None, *, op_id: str
    ) -> Room:
        """Open a room for a visitor and route it (room_started, agent_assigned)."""
        ...

    def livechat_take_room(
        self, caller: Caller, room_id: str, agent_id: str, *, op_id: str
    ) -> Room:
        """Assign a queued room to an agent (agent_assigned)."""
        ...

    def livechat_transfer_room(
        self, caller: Caller, room_id: str, department: str | None = None,
        agent_id: str | None = None, *, op_id: str,
    ) -> Room:
        """Move a room to an agent or a department (unassigned, assigned, transferred)."""
        ...

    def livechat_close_room(
        self, caller: Caller, room_id: str, comment: str | None = None, *, op_id: str
    ) -> Room:
        """Close a room, closed by the caller's app user (room_closed)."""
        ...

    # -- livechat.agent-display -------------------------------------------------------------
    def livechat_set_agent_display(
        self, caller: Caller, room_id: str, name: str, avatar_url: str | None = None, *,
        op_id: str,
    ) -> Room:
        """Show an external agent's name/avatar; only if the caller's app user serves the room
        (Forbidden otherwise)."""
        ...

    def livechat_relay_message(
        self, caller: Caller, room_id: str, text: str, alias: str,
        avatar_url: str | None = None, *, op_id: str,
    ) -> Message:
        """Send as the caller's app user, shown to the visitor as `alias`/`avatar_url`; only
        in a room the caller's app user serves (Forbidden otherwise)."""
        ...

    # -- messages ---------------------------------------------------------------------------
    def messages_send(self, caller: Caller, room_id: str, text: str, *, op_id: str) -> Message:
        """Send as the caller's app user, through the pre-send hook (Prevented)."""
        ...

    def messages_send_as_user(
        self, caller: Caller, room_id: str, user_id: str, text: str, *, op_id: str
    ) -> Message:
        """Send as a user the calling app created (Forbidden for any other user)."""
        ...

    def messages_list(
        self, caller: Caller, room_id: str, limit: int | None = None
    ) -> list[Message]:
        """The room's latest messages (default 50, at most 500), oldest first."""
        ...

    # -- for the host -----------------------------------------------------------------------
    #: Whether `was_applied` is exact for every write action: each write records its op_id in
    #: its own transaction. The gate then lets a write's success be recorded by the group
    #: commit, since a crash before that commit is settled from this record. An adapter that
    #: does not say is taken as inexact.
    op_log_exact: bool

    def was_applied(self, op_id: str) -> bool:
        """Whether a write with this op_id committed (crash reconciliation)."""
        ...

    def is_privileged(self, role: str) -> bool:
        """Whether the role is admin-class on this server (unknown roles: False)."""
        ...

    def roles_list(self) -> list[Role]:
        """Every role with its privileged flag."""
        ...

    def user_created_by(self, user_id: str) -> str | None:
        """The app that created this user (None if not app-created). NotFound."""
        ...

    def user_standing(self, user_id: str, *, privileged: bool = False) -> UserStanding:
        """Who this user is, for the engine's guardrails on an action naming it: the app that
        created it, the app whose own user it is, and (only when `privileged`, a deactivation's
        question) whether it holds a privileged role. NotFound; Unavailable when the roles
        cannot be read now."""
        ...

    def users_count_active_app_created(self) -> int:
        """Active app-created users (the workspace seat ceiling)."""
        ...

    def seats_in_use(self, pending_op_ids: Sequence[str]) -> int:
        """Seats in use, from the truth: active app-created users plus those of the pending
        creations (`pending_op_ids`) not applied yet, read in one snapshot."""
        ...

    def count_users_created_by(self, app_id: str) -> int:
        """Users this app created (active or not)."""
        ...

    def deactivate_users_created_by(self, app_id: str) -> int:
        """Deactivate every user this app created; returns how many changed."""
        ...

    def create_app_user(self, app_id: str, name: str) -> User:
        """The app's own user (type `app`, username `app.<app_id>`); idempotent per app."""
        ...

    def remove_app_user(self, app_id: str) -> User | None:
        """Deactivate the app's user and drop its agent record; None if it has none."""
        ...

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive `(event_name, payload)` after each commit; returns an unsubscribe function."""
        ...

    def set_pre_send_hook(self, hook: PreSendHook | None) -> None:
        """Install (or clear) the one pre-send hook."""
        ...


def adapter_method(adapter: ServerAdapter, action: str) -> Callable[..., Any]:
    """The bound adapter method serving a vocabulary action (KeyError if the host serves it)."""
    fn: Callable[..., Any] = getattr(adapter, ACTION_METHODS[action])
    return fn

