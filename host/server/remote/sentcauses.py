"""The cause of each message an app sent to a remote workspace while it handled an event, kept
in this host's memory until the workspace's webhook for that message comes back.

A Rocket.Chat workspace's webhooks carry no Stockade depth: without this record an app's answer
came back as an event of depth 0, and two apps answering each other's `message.sent` through a
workspace looped until their quotas ran out (`host.server.events.MAX_EVENT_DEPTH` stopped them
only on the embedded server). So the adapter chooses such a message's `_id` itself before the
POST (Rocket.Chat's chat.sendMessage takes one: the webhook may arrive before the POST's answer),
records id → `Cause` here, and the receiver emits that message's event with the recorded cause.

A security boundary, kept narrow: the depth of an event comes from here only for an id this host
chose (random, ~98 bits: no person or app can guess it before the POST, and the workspace refuses
an id already used after it) and only in the room it was sent to. Nothing a webhook or a message
says can put an id in, so no one can lower another chain's depth by naming an id. Another host
that serves the same workspace holds no record: the event it receives starts at depth 0
(docs/EVENTS.md).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from host.server.events import Cause

# Messages remembered at once. Guards the host's memory against a record per app message that
# never meets its webhook (a workspace with its Message webhooks off keeps none of them coming):
# past it the oldest is forgotten, and its webhook's event starts again at depth 0, the quotas'
# bound alone, as before this record. Far above what the apps of one host can send within the
# keep time under their quotas' defaults (600 calls a minute each), at ~200 bytes a record.
MAX_SENT_CAUSES = 10_000
# Seconds a record waits for its webhook. Guards the same memory as MAX_SENT_CAUSES, by age: a
# webhook comes within seconds, Rocket.Chat retries one for ~100 s (ten times, ten seconds
# apart), and a host's inbox held back by a workspace that cannot be read waits past that; a
# record older is dropped, and a message whose webhook comes later starts at depth 0.
SENT_CAUSE_KEEP_S = 15 * 60.0


@dataclass(frozen=True)
class Sent:
    """What this host recorded of a message it sent: the write's cause, its room, and when."""

    cause: Cause
    room_id: str
    at: float


class SentCauses:
    """Message id (chosen by this host) → what led to the message; bounded by count and age."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # app runners send while the receiver's worker takes
        self._sent: OrderedDict[str, Sent] = OrderedDict()  # oldest first

    def remember(self, msg_id: str, cause: Cause, room_id: str, now: float) -> None:
        """Record a message about to be sent (before its POST leaves)."""
        with self._lock:
            self._prune(now)
            self._sent[msg_id] = Sent(cause, room_id, now)
            self._sent.move_to_end(msg_id)
            while len(self._sent) > MAX_SENT_CAUSES:
                self._sent.popitem(last=False)

    def forget(self, msg_id: str) -> None:
        """A send that failed for sure: no webhook will come for it."""
        with self._lock:
            self._sent.pop(msg_id, None)

    def peek(self, msg_id: str, now: float) -> Sent | None:
        """The record of `msg_id`, kept for its webhook (the message's app before the POST's
        answer recorded it on disk)."""
        with self._lock:
            self._prune(now)
            return self._sent.get(msg_id)

    def take(self, msg_id: str, room_id: str, now: float) -> Cause | None:
        """The cause of the message `msg_id` read back in `room_id`, once (its event is claimed
        once); None for an id this host did not record, or recorded for another room."""
        with self._lock:
            self._prune(now)
            sent = self._sent.get(msg_id)
            if sent is None or sent.room_id != room_id:
                return None
            del self._sent[msg_id]
            return sent.cause

    def __len__(self) -> int:
        with self._lock:
            return len(self._sent)

    def _prune(self, now: float) -> None:
        oldest = now - SENT_CAUSE_KEEP_S
        while self._sent:
            first = next(iter(self._sent.values()))
            if first.at >= oldest:
                return
            self._sent.popitem(last=False)
