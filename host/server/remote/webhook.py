"""Rocket.Chat's omnichannel webhook payloads: the one place their shape is written down.

Both ends use this module: the stand-in's sender (`standin_hooks.py`) builds payloads with
`build`, and the host's receiver (`receiver.py`) reads them with `parse`. Each field says which
Rocket.Chat documentation it follows:

- [WH] docs.rocket.chat, "Omnichannel > Webhooks" (Administration > Workspace > Omnichannel >
  Webhooks): the settings (Webhook URL, Secret Token, "Send Request on" chat start / close /
  taken / queued / forwarding / visitor message / agent message), the secret sent in the
  `X-RocketChat-Livechat-Token` header, ten retries ten seconds apart on a non-200 answer, and
  the sample JSON of a Livechat session;
- [CRM] Rocket.Chat's livechat CRM hook (`sendToCRM`: apps/meteor/app/livechat/server/hooks),
  which names each `type` and puts the room's guest info (`getLivechatRoomGuestInfo`) and the
  messages into the body;
- [REST] developer.rocket.chat REST API reference, for ids and timestamps (`_id`, ISO-8601 UTC).

What a webhook does NOT carry is filled from the REST API by the receiver (docs/ROCKETCHAT.md,
"Events"): the agent that was unassigned (a webhook names only the new agent), the department a
room went to, who closed it. Of a message the receiver uses only its `_id`: the message itself
(text, sender, time) is read back from the workspace, never taken from the webhook.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The header that carries the secret token [WH].
TOKEN_HEADER = "X-RocketChat-Livechat-Token"  # noqa: S105 (a header name)
# Retries on a non-200 answer and the wait between them [WH]: ten, ten seconds apart.
RETRIES = 10
RETRY_SPACING_S = 10.0

# `type` values, one per "Send Request on" choice [CRM].
CHAT_START = "LivechatSessionStart"        # "Chat Start"
CHAT_CLOSE = "LivechatSession"             # "Chat Close" (the session with its transcript)
CHAT_TAKEN = "LivechatSessionTaken"        # "Chat Taken" (an agent took the inquiry)
CHAT_QUEUED = "LivechatSessionQueued"      # "Chat Queued" (the room is waiting for an agent)
CHAT_FORWARDED = "LivechatSessionForwarded"  # "Forwarding" (to another agent or department)
MESSAGE = "Message"                        # "Visitor Messages" and "Agent Messages"
TYPES = frozenset({CHAT_START, CHAT_CLOSE, CHAT_TAKEN, CHAT_QUEUED, CHAT_FORWARDED, MESSAGE})

# Bounds a receiver holds a payload to (a real session of a long chat is well under these).
MAX_MESSAGES = 1000
MAX_ID = 64


@dataclass(frozen=True)
class WebhookMessage:
    id: str | None       # `messages[]._id` [CRM] (newer servers; older ones send none)
    username: str        # `messages[].username`: the sender's user name [WH sample]
    text: str            # `messages[].msg` [WH sample]
    ts: str | None       # `messages[].ts`: ISO-8601 [WH sample]
    agent_id: str | None  # `messages[].agentId`: set when the sender is not the visitor [WH]


@dataclass(frozen=True)
class Webhook:
    type: str            # `type` [CRM]
    room_id: str         # `_id`: the livechat room's id [WH sample]
    visitor_id: str | None  # `visitor._id` [WH sample]
    visitor_name: str | None  # `visitor.name` [WH sample]
    agent_id: str | None    # `agent._id`: the serving agent, when there is one [WH sample]
    messages: tuple[WebhookMessage, ...] = field(default=())  # `messages` [WH sample]


class BadPayload(ValueError):
    """The body is not a Rocket.Chat omnichannel webhook this receiver understands."""


def build(kind: str, room: dict[str, Any], visitor: dict[str, Any] | None,
          agent: dict[str, Any] | None, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A webhook body as Rocket.Chat sends it, from REST-shaped documents (`rooms.info`'s room,
    `livechat/visitors.info`'s visitor, `users.info`'s agent, `channels.messages`' messages)."""
    v = visitor or {}
    body: dict[str, Any] = {
        "type": kind,                                   # [CRM]
        "_id": room["_id"],                             # room id [WH sample]
        "label": v.get("name") or "",                   # the visitor's name as label [WH sample]
        "createdAt": room.get("ts"),                    # room creation, ISO-8601 [WH sample]
        "lastMessageAt": room.get("lm") or room.get("ts"),  # [WH sample]
        "tags": room.get("tags") or [],                 # [WH sample]
        "customFields": room.get("livechatData") or {},  # room custom fields [WH sample]
        "visitor": {                                    # [WH sample]
            "_id": v.get("_id"),
            "token": v.get("token"),
            "name": v.get("name"),
            "username": v.get("username"),
            "email": v.get("visitorEmails") or [],      # a list of {address} [WH sample]
            "phone": None,
        },
        "messages": [{                                  # [WH sample]; `_id` per [CRM]
            "_id": m.get("_id"),
            "username": (m.get("u") or {}).get("username"),
            "msg": m.get("msg"),
            "ts": m.get("ts"),
            **({"agentId": (m.get("u") or {}).get("_id")}
               if (m.get("u") or {}).get("type") != "visitor" else {}),
        } for m in messages],
    }
    if agent:
        body["agent"] = {                               # [WH sample]
            "_id": agent.get("_id"),
            "username": agent.get("username"),
            "name": agent.get("name"),
            "email": ((agent.get("emails") or [{}])[0] or {}).get("address"),
        }
    return body


def _id(raw: Any, what: str, *, required: bool) -> str | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > MAX_ID:
        raise BadPayload(f"{what} must be an id of 1..{MAX_ID} characters")
    return raw


def parse(body: bytes) -> Webhook:
    """Read a webhook body; BadPayload for anything else (never trusted beyond its ids: the
    receiver reads the room's state from the REST API)."""
    try:
        # Strict UTF-8 first: json.loads on bytes lets surrogate code points through (the bytes
        # ED A0 80), which the inbox's text column cannot hold (the endpoint answered 500).
        doc = json.loads(body.decode("utf-8"))
        # A lone surrogate written as an escape ("\ud800") parses too: refused the same, or a
        # room id holding one blocked the inbox (its REST read could never be encoded) for good.
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        # RecursionError: a body nested deeper than the parser's stack (a 1 MiB body of "[")
        raise BadPayload("the body is not JSON in UTF-8 (or is nested too deep)") from None
    # `type` a string before the set lookup: a list or object there raised TypeError
    # (unhashable), a 500 where a body of no known type is a 400
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str) \
            or doc["type"] not in TYPES:
        raise BadPayload("not an omnichannel webhook of a known type")
    room_id = _id(doc.get("_id"), "_id", required=True)
    assert room_id is not None
    visitor: dict[str, Any] = doc["visitor"] if isinstance(doc.get("visitor"), dict) else {}
    agent: dict[str, Any] = doc["agent"] if isinstance(doc.get("agent"), dict) else {}
    raw_msgs = doc.get("messages") or []
    if not isinstance(raw_msgs, list) or len(raw_msgs) > MAX_MESSAGES:
        raise BadPayload(f"messages must be a list of at most {MAX_MESSAGES}")
    msgs = tuple(
        WebhookMessage(id=_id(m.get("_id"), "messages[]._id", required=False),
                       username=str(m.get("username") or "")[:64],
                       text=str(m.get("msg") or ""),
                       ts=str(m["ts"]) if m.get("ts") else None,
                       agent_id=_id(m.get("agentId"), "agentId", required=False))
        for m in raw_msgs if isinstance(m, dict))
    return Webhook(type=str(doc["type"]), room_id=room_id,
                   visitor_id=_id(visitor.get("_id"), "visitor._id", required=False),
                   visitor_name=str(visitor["name"])[:200] if visitor.get("name") else None,
                   agent_id=_id(agent.get("_id"), "agent._id", required=False), messages=msgs)
