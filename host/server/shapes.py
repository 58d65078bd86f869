"""The plain JSON-able shapes the server returns and emits, defined once.

Every server operation returns one of these (as a plain dict) and every event payload is built
from them, so the gate, the event dispatcher and the REST layer agree on one set of fields.
Timestamps are float seconds since the epoch (from the injected clock).
"""
from __future__ import annotations

from typing import Literal, NamedTuple, TypedDict

UserType = Literal["user", "bot", "app"]
AgentStatus = Literal["available", "not-available"]


class User(TypedDict):
    id: str
    type: str  # one of UserType
    username: str
    name: str
    emails: list[str]
    roles: list[str]
    active: bool
    custom_fields: dict[str, str]
    created_by_app: str | None  # the app that created it through a bridge, else None
    app_id: str | None  # set only on an app's own user (type "app")
    created_at: float


class UserStanding(NamedTuple):
    """Who a user an app's call names is, for the gate's facts (not an answer an app sees):
    the app that created it, the app whose own user it is, and whether it holds a privileged
    role (None when not asked: only a deactivation needs it)."""

    created_by_app: str | None
    own_user_of: str | None
    privileged: bool | None


class Role(TypedDict):
    name: str
    privileged: bool
    description: str


class Agent(TypedDict):
    user_id: str
    username: str
    name: str
    type: str
    status: str  # one of AgentStatus
    routable_offline: bool  # a bot agent is routable while not-available
    departments: list[str]


class Department(TypedDict):
    id: str
    name: str
    enabled: bool
    agents: list[str]  # agent user ids


class Visitor(TypedDict):
    id: str
    token: str
    name: str | None
    email: str | None
    custom_fields: dict[str, str]
    created_at: float


class AgentDisplay(TypedDict):
    name: str
    avatar_url: str | None


class Closer(TypedDict):
    type: str  # "user" (an agent, an operator or an app's user) or "visitor"
    id: str | None  # None when the system closed it
    app_id: str | None  # the app that closed it, if one did


class Room(TypedDict):
    id: str
    visitor_id: str
    department_id: str | None
    served_by: str | None  # the serving agent's user id; None while queued
    open: bool
    custom_fields: dict[str, str]
    agent_display: AgentDisplay | None
    created_by_app: str | None
    created_at: float
    closed_at: float | None
    closed_by: Closer | None
    close_comment: str | None


class Sender(TypedDict):
    type: str  # "user" or "visitor"
    id: str
    username: str | None  # users only
    name: str | None


class Message(TypedDict):
    id: str
    room_id: str
    sender: Sender
    app_id: str | None  # the app whose app user sent it (the host skips that app's own hook)
    text: str
    ts: float
    # What the visitor sees instead of the sender (an external agent relayed by an app holding
    # livechat.agent-display); None for an ordinary message. `sender` stays the truth.
    display: AgentDisplay | None


# Event payloads (the second argument of a subscriber callback), by event name.
class RoomStarted(TypedDict):
    room: Room
    visitor: Visitor


class RoomClosed(TypedDict):
    room: Room
    closed_by: Closer


class AgentAssigned(TypedDict):
    room: Room
    agent: Agent


# "from" is a keyword, so this payload needs the functional TypedDict form.
RoomTransferred = TypedDict(
    "RoomTransferred",
    {"room": Room, "from": Agent | None, "to": Agent | None, "department": Department | None},
)


class GuestSaved(TypedDict):
    visitor: Visitor


class MessageSent(TypedDict):
    message: Message
    room: Room
