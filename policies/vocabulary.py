"""The one table of permissions, actions and events. Disclosure, lint, gate and engine read it.

A permission is what a manifest asks for and an operator grants; an action is one bridge
operation and needs exactly one permission. Adding an action here is the only way to make it
reachable from an app: the gate refuses any action name not in ACTIONS.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Risk = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True)
class PermissionSpec:
    name: str
    risk: Risk
    plain: str  # what the operator reads in the disclosure


@dataclass(frozen=True)
class ActionSpec:
    name: str
    permission: str
    write: bool  # writes reach the server's state (audited durably before the call)
    args: tuple[str, ...]  # required argument names
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventSpec:
    name: str
    needs: tuple[str, ...]  # permissions an install must hold to receive it
    pre: bool = False  # pre events can prevent/modify and run in order under a short deadline
    # The payload's top-level keys and the shape of each (a shape name of `host.server.shapes`,
    # "| None" when it may be missing). `docs/EVENTS.md` is generated from this table
    # (`python -m host.apps.eventdoc`); a test holds the two equal and checks the server's events.
    payload: tuple[tuple[str, str], ...] = ()
    # The bridge actions the payload's data amounts to (see EVENT_READS below): the operator's
    # policy must permit the app every one of them, or the event never reaches it. Guards: an
    # event carrying what the policy refuses through the bridge (DESIGN rules 7 and 11).
    amounts_to: tuple[str, ...] = ()
    # Payload keys whose data is a read of its own, beside what `amounts_to` already covers:
    # (key, action); `a.b` is field `b` of the object at key `a` (an agent's username). Each
    # reaches an app only when the policy permits it that action (its permission granted too,
    # `policies.events.withheld_keys`); to any other receiver the key is None. Guards:
    # `message.sent` handing the whole room (serving agent, department, livechat custom
    # fields) to an app granted `messages.read` alone, or forbidden `livechat.get_room`, with
    # every message; an assignment naming staff to an app refused `users.get` (rules 7, 11).
    withheld: tuple[tuple[str, str], ...] = ()


PERMISSIONS: dict[str, PermissionSpec] = {
    p.name: p
    for p in (
        PermissionSpec("users.read", "low", "look up users by id, username or custom field"),
        PermissionSpec("users.create", "high", "create user accounts (billed seats)"),
        PermissionSpec("users.update", "medium", "write custom fields on users"),
        PermissionSpec("users.deactivate", "high", "deactivate user accounts"),
        PermissionSpec("roles.assign", "critical", "assign and remove roles on users"),
        PermissionSpec(
            "livechat.agents", "high",
            "make users livechat agents, set their status and put them in departments"
        ),
        PermissionSpec(
            "livechat.read", "medium", "read livechat rooms, visitors and departments"
        ),
        PermissionSpec(
            "livechat.write", "medium", "open, assign, transfer and close livechat rooms"
        ),
        PermissionSpec(
            "livechat.agent-display", "low", "show visitors an external agent's name and avatar, "
            "on the room and on the messages it relays in rooms its own user serves"
        ),
        PermissionSpec("messages.send", "medium", "send messages to rooms as the app user"),
        PermissionSpec("messages.read", "medium", "read the messages of rooms"),
        PermissionSpec(
            "messages.send-as-own-users", "medium",
            "send messages as users this app created (its bot accounts), never as anyone else",
        ),
        PermissionSpec("persistence", "low", "keep its own data in a private key-value store"),
        PermissionSpec("http", "high", "make outbound HTTP requests through the host"),
        PermissionSpec("server.rest", "critical", "call allow-listed server REST routes as its "
                       "own user; a route that does what a bridge action does is held to that "
                       "action's rules"),
    )
}

_A = ActionSpec
ACTIONS: dict[str, ActionSpec] = {
    a.name: a
    for a in (
        _A("users.get", "users.read", False, ("user_id",)),
        _A("users.get_by_username", "users.read", False, ("username",)),
        _A("users.find_by_field", "users.read", False, ("key", "value")),
        _A(
            "users.create",
            "users.create",
            True,
            ("username", "name", "type"),
            ("email", "roles", "custom_fields"),
        ),
        _A("users.set_custom_fields", "users.update", True, ("user_id", "fields")),
        _A("users.deactivate", "users.deactivate", True, ("user_id",)),
        _A("roles.assign", "roles.assign", True, ("user_id", "role")),
        _A("roles.remove", "roles.assign", True, ("user_id", "role")),
        _A("livechat.add_agent", "livechat.agents", True, ("user_id",)),
        _A("livechat.remove_agent", "livechat.agents", True, ("user_id",)),
        _A("livechat.set_agent_status", "livechat.agents", True, ("user_id", "status")),
        _A("livechat.add_department_agent", "livechat.agents", True, ("department", "user_id")),
        _A(
            "livechat.remove_department_agent",
            "livechat.agents",
            True,
            ("department", "user_id"),
        ),
        _A("livechat.get_room", "livechat.read", False, ("room_id",)),
        _A("livechat.get_department", "livechat.read", False, ("department",)),
        _A("livechat.list_departments", "livechat.read", False, ()),
        _A("livechat.list_rooms", "livechat.read", False, (), ("open",)),
        _A("livechat.get_visitor", "livechat.read", False, ("visitor_id",)),
        _A("livechat.create_room", "livechat.write", True, ("visitor_id",), ("department",)),
        _A("livechat.take_room", "livechat.write", True, ("room_id", "agent_id")),
        _A(
            "livechat.transfer_room",
            "livechat.write",
            True,
            ("room_id",),
            ("department", "agent_id"),
        ),
        _A("livechat.close_room", "livechat.write", True, ("room_id",), ("comment",)),
        _A(
            "livechat.set_agent_display",
            "livechat.agent-display",
            True,
            ("room_id", "name"),
            ("avatar_url",),
        ),
        _A(
            "livechat.relay_message",
            "livechat.agent-display",
            True,
            ("room_id", "text", "alias"),
            ("avatar_url",),
        ),
        _A("messages.send", "messages.send", True, ("room_id", "text")),
        _A(
            "messages.send_as_user",
            "messages.send-as-own-users",
            True,
            ("room_id", "user_id", "text"),
        ),
        _A("messages.list", "messages.read", False, ("room_id",), ("limit",)),
        _A("persistence.put", "persistence", True, ("key", "value"), ("association",)),
        _A("persistence.get", "persistence", False, ("key",)),
        _A("persistence.delete", "persistence", True, ("key",)),
        _A("persistence.find", "persistence", False, ("association",)),
        _A("http.request", "http", True, ("method", "url"), ("headers", "body")),
        _A("rest.call", "server.rest", True, ("method", "route"), ("body",)),
    )
}


def _agent_fields(key: str) -> tuple[tuple[str, str], ...]:
    """An agent's fields that are other reads than the room's: who the user is (`users.get`:
    username, display name, user or bot) and every department it is in (its membership, as
    `livechat.list_departments` shows it). Guards: an app granted `livechat.read` alone, or
    forbidden those reads, learning staff members' names and departments from each
    assignment (DESIGN rules 7 and 11). `user_id` is the room's `served_by`: it stays."""
    return (*((f"{key}.{f}", "users.get") for f in ("username", "name", "type")),
            (f"{key}.departments", "livechat.list_departments"))


# What each event's payload amounts to, in bridge actions: the one place that says it. An event
# reaches an app only when the policy permits the app every action listed (`policies.events`),
# decided as that read with no per-event facts, so a rule condition that would need one refuses
# (fail closed). Each action's permission is among the event's `needs` (a test holds it).
#   room / closed_by / agent ........ livechat.get_room (the room's state: who serves, who closed)
#   visitor ......................... livechat.get_visitor (e-mail, token, custom fields)
#   department (transfers) .......... livechat.get_department (required even when it is None:
#                                     the decision is per event kind, never per payload)
#   an agent's username, name, type . users.get, withheld (None) from an app refused it
#   an agent's departments .......... livechat.list_departments, withheld likewise
#   message ......................... messages.list
#   its room (message events) ........ livechat.get_room, withheld (None) from an app the
#                                     policy refuses it: the message still arrives
#   pre_send: also messages.send (the hook rewrites or stops someone else's message)
EVENTS: dict[str, EventSpec] = {
    e.name: e
    for e in (
        EventSpec("livechat.room_started", ("livechat.read",),
                  payload=(("room", "Room"), ("visitor", "Visitor")),
                  amounts_to=("livechat.get_room", "livechat.get_visitor")),
        EventSpec("livechat.room_closed", ("livechat.read",),
                  payload=(("room", "Room"), ("closed_by", "Closer")),
                  amounts_to=("livechat.get_room",)),
        EventSpec("livechat.agent_assigned", ("livechat.read",),
                  payload=(("room", "Room"), ("agent", "Agent")),
                  amounts_to=("livechat.get_room",), withheld=_agent_fields("agent")),
        EventSpec("livechat.agent_unassigned", ("livechat.read",),
                  payload=(("room", "Room"), ("agent", "Agent")),
                  amounts_to=("livechat.get_room",), withheld=_agent_fields("agent")),
        EventSpec("livechat.room_transferred", ("livechat.read",),
                  payload=(("room", "Room"), ("from", "Agent | None"), ("to", "Agent | None"),
                           ("department", "Department | None")),
                  amounts_to=("livechat.get_room", "livechat.get_department"),
                  withheld=(*_agent_fields("from"), *_agent_fields("to"))),
        EventSpec("livechat.guest_saved", ("livechat.read",), payload=(("visitor", "Visitor"),),
                  amounts_to=("livechat.get_visitor",)),
        EventSpec("message.sent", ("messages.read",),
                  payload=(("message", "Message"), ("room", "Room | None")),
                  amounts_to=("messages.list",),
                  withheld=(("room", "livechat.get_room"),)),
        EventSpec("message.pre_send", ("messages.read", "messages.send"), pre=True,
                  payload=(("message", "Message"), ("room", "Room | None")),
                  amounts_to=("messages.list", "messages.send"),
                  withheld=(("room", "livechat.get_room"),)),
    )
}

# The events some receivers get with keys set to None (`EventSpec.withheld`): the host builds a
# payload per receiver for these only.
WITHHOLDING: frozenset[str] = frozenset(n for n, e in EVENTS.items() if e.withheld)

# Roles no app may ever assign or remove, whatever a policy file says (DESIGN rule 10). Compared
# after normalisation (NFKC + casefold, ASCII only); the server may mark more roles privileged.
ADMIN_CLASS_ROLES: frozenset[str] = frozenset(
    {"admin", "owner", "moderator", "livechat-manager", "livechat-monitor", "leader", "root"}
)

# Roles that let their holder post under another name (Rocket.Chat's `message-impersonate`, which
# its defaults give `bot` and `app`): an app gives them to bot users only, never to a person
# (`host.server.impersonation`; a workspace's own permission table can name more). Guards: a
# serving agent posing as anyone to its visitor through a role a policy calls ordinary.
IMPERSONATING_ROLES: frozenset[str] = frozenset({"bot", "app"})

# Roles whose grant is a power with a bridge action of its own: on Rocket.Chat a user holding
# `livechat-agent` *is* a livechat agent (the agent route adds exactly that role), so giving it
# (roles.assign, or users.create with it) amounts to livechat.add_agent and taking it
# (roles.remove) to livechat.remove_agent. Guards: an app that may hand out the role making
# agents around livechat.agents' consent, its rules and its quotas (DESIGN rule 11).
ROLE_AMOUNTS_TO: Mapping[str, tuple[str, str]] = MappingProxyType({
    "livechat-agent": ("livechat.add_agent", "livechat.remove_agent"),
})
