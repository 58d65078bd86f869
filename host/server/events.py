"""Post-commit events and the pre-send hook point.

A server operation collects its events while its transaction runs and hands them to `EventBus`
only after COMMIT, so no subscriber ever sees an event for state that was rolled back. Writes
hand theirs over in commit order (`host.server.core.CommitOrder`: a write takes its place while
it holds the write lock; when writes overlap, whichever holds the next place emits, so a write
may return before its events are sent by another). Within one write they go in the order it
produced them; the host's subscriber must not block (it hands each event to its dispatcher). A
subscriber that raises is logged and skipped: it can never undo or fail the action that already
committed.

Each write's events carry its `Cause`: how many app-handled events led to it (its depth) and the
app whose handler made it. The host sets the cause of an app's writes around that app's handling
of an event (`writing`); a write reads it on its own thread as it commits, and the bus hands it
to the subscribers with the events (`emitting_cause`), whichever thread emits them. The host
delivers no event deeper than `MAX_EVENT_DEPTH` to apps (`host.hostevents`), which ends loops
between apps' handlers.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
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


# The deepest event the host delivers to apps. Guards against loops between apps' handlers (two
# apps that each answer the other's message, or one answering its own): a person's or the
# system's action raises events of depth 0; an app's write made while it handles an event of
# depth d raises events of depth d + 1; one deeper than this reaches no app, and is counted and
# audited as a loop stop (`host.hostevents`). Before, one visitor message set two such apps
# answering each other until both had spent their bridge quotas (1,200 messages a minute under
# the default policy). Eight generations are far more than any integration here needs
# (room_started, then an app's take, then agent_assigned, then a greeting: depth 2).
MAX_EVENT_DEPTH = 8


@dataclass(frozen=True)
class Cause:
    """What led to a write. `depth`: how many app-handled events came before it (0: a person's
    or the system's write); `app_id`, `install_id`: the app whose handler made it, if any."""

    depth: int = 0
    app_id: str | None = None
    install_id: str | None = None


NO_CAUSE = Cause()
# The cause of the writes made in this context: set only by the host, around an app's handling
# of an event (`host.supervise.supervisor.AppRunner`), never from anything the app sends, so an
# app can neither name nor reset its depth through a bridge call. Each thread starts at
# NO_CAUSE (a person's request, the system).
_WRITING: ContextVar[Cause] = ContextVar("stockade_writing", default=NO_CAUSE)
# The cause of the events the bus is handing to subscribers now, in this context (`emit`).
_EMITTING: ContextVar[Cause] = ContextVar("stockade_emitting", default=NO_CAUSE)


def writing_cause() -> Cause:
    """The cause of a write made now, in this context."""
    return _WRITING.get()


@contextmanager
def writing(cause: Cause) -> Iterator[None]:
    """Make `cause` the cause of every write made in this context until the block ends."""
    token = _WRITING.set(cause)
    try:
        yield
    finally:
        _WRITING.reset(token)


def emitting_cause() -> Cause:
    """Called by a subscriber: the cause of the event it is being handed (NO_CAUSE outside an
    emit, and for events another process or a remote workspace committed)."""
    return _EMITTING.get()


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

    def emit(self, events: Iterable[Event], cause: Cause = NO_CAUSE) -> None:
        """Deliver committed events in order to every subscriber; a raising one is logged.
        `cause`: the cause of the write that raised them (`emitting_cause` while they run)."""
        subs = self._subs
        if not subs:
            return
        token = _EMITTING.set(cause)
        try:
            for name, payload in events:
                for cb in subs:
                    try:
                        cb(name, payload)
                    except Exception:
                        log.exception("event subscriber %r failed on %s (ignored)", cb, name)
        finally:
            _EMITTING.reset(token)
