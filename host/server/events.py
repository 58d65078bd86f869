"""Post-commit events and the pre-send hook point.

A server operation collects its events while its transaction runs and hands them to `EventBus`
only after COMMIT, so no subscriber ever sees an event for state that was rolled back. Writes
hand theirs over in commit order (`host.server.core.CommitOrder`: a write takes its place while
it holds the write lock; when writes overlap, whichever holds the next place emits, so a write
may return before its events are sent by another). Within one write they go in the order it
produced them; the host's subscriber must not block (it hands each event to its dispatcher). A
subscriber that raises is logged and skipped: it can never undo or fail the action that already
committed.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("stockade.server.events")

Event = tuple[str, dict[str, Any]]
Subscriber = Callable[[str, dict[str, Any]], None]
# Called before a message is written, outside any transaction, with the draft message's fields
# (a `Message`) plus "room" (the `Room`) and "origin" ({"app_id", "install_id"} of the sending
# app, or None). Returns the (possibly modified) message dict (only "text" is taken), or None to
# prevent it, or a dict with "prevented": True, "prevented_by" and "reason"; it may also raise
# `Prevented` itself. Any other exception prevents the message (fail closed) and is logged.
PreSendHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]

ROOM_STARTED = "livechat.room_started"
ROOM_CLOSED = "livechat.room_closed"
AGENT_ASSIGNED = "livechat.agent_assigned"
AGENT_UNASSIGNED = "livechat.agent_unassigned"
ROOM_TRANSFERRED = "livechat.room_transferred"
GUEST_SAVED = "livechat.guest_saved"
MESSAGE_SENT = "message.sent"
POST_EVENTS = (
    ROOM_STARTED, ROOM_CLOSED, AGENT_ASSIGNED, AGENT_UNASSIGNED, ROOM_TRANSFERRED, GUEST_SAVED,
    MESSAGE_SENT,
)


class EventBus:
    """Subscribers, called after commit. Payloads are shared: subscribers treat them read-only."""

    def __init__(self) -> None:
        self._subs: tuple[Subscriber, ...] = ()  # copy-on-write: emit never takes the lock
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Register `callback(event_name, payload)`; returns a function that unsubscribes."""
        with self._lock:
            self._subs = (*self._subs, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subs = tuple(s for s in self._subs if s is not callback)

        return unsubscribe

    def emit(self, events: Iterable[Event]) -> None:
        """Deliver committed events in order to every subscriber; a raising one is logged."""
        subs = self._subs
        if not subs:
            return
        for name, payload in events:
            for cb in subs:
                try:
                    cb(name, payload)
                except Exception:
                    log.exception("event subscriber %r failed on %s (ignored)", cb, name)
