"""An event's cause (`host.server.events.Cause`) is the raising write's alone: it is handed to
subscribers only while they handle that write's events, and never outlives them on the thread
that emitted them, even when a subscriber raises. A cause left behind would be charged to the
next events that thread emits: a visitor's message taken for the tenth round of a loop between
apps, and stopped."""
from __future__ import annotations

from typing import Any

from host.server.events import NO_CAUSE, Cause, EventBus, emitting_cause, writing, writing_cause


def test_the_cause_is_handed_with_its_events_and_gone_after_even_when_a_subscriber_raises(
        ) -> None:
    bus = EventBus()
    heard: list[tuple[str, Cause]] = []

    def first(name: str, _payload: dict[str, Any]) -> None:
        heard.append((name, emitting_cause()))
        raise RuntimeError("a broken subscriber")

    bus.subscribe(first)
    deep = Cause(9, "ping", "install-1")
    bus.emit([("message.sent", {}), ("livechat.room_closed", {})], deep)
    assert heard == [("message.sent", deep), ("livechat.room_closed", deep)]
    assert emitting_cause() == NO_CAUSE
    bus.emit([("message.sent", {})])  # a person's write: no cause given
    assert heard[-1] == ("message.sent", NO_CAUSE)


def test_a_writes_cause_holds_only_inside_its_block() -> None:
    assert writing_cause() == NO_CAUSE
    cause = Cause(3, "pong", "install-2")
    try:
        with writing(cause):
            assert writing_cause() == cause
            raise ValueError("the handler failed")
    except ValueError:
        pass
    assert writing_cause() == NO_CAUSE
