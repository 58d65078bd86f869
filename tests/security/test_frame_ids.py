"""An app learns nothing about other apps' events from the ids of the frames it is sent.

Every Event and Exec frame the host sent took its id from one counter shared by every child
of the host, so an escaped app reading its raw frames could count, from the gap between two
of its own events, how many events and snippets the host had sent to other apps in between,
including events it holds no grant for (a pre-send hook for every message of a room it may
not read: the room's traffic, live). The ids are now drawn at random per request (one per
fan-out, as before), so the gap says nothing.

The children here are real processes (`sechelp.start_fake_child`) that answer each event with
the id they were sent, as an escaped app reading its channel would see it.
"""
from __future__ import annotations

from itertools import pairwise
from typing import Any

from sechelp import start_fake_child

from host.supervise.child import Child


def _no_calls(_child: Child, _action: str, _args: dict[str, Any]) -> Any:
    raise AssertionError("no bridge call expected")


def test_an_apps_event_ids_do_not_count_other_apps_events() -> None:
    rounds = (0, 1, 3, 7)
    spy = start_fake_child([["event"], ["done_id"]] * (len(rounds) + 1) + [["sleep", 30]])
    other = start_fake_child([["event"], ["done"]] * sum(rounds) + [["sleep", 30]])
    try:
        seen = [spy.deliver("ping", {}, 5.0, _no_calls, lambda *_: None)]
        for n in rounds:
            for _ in range(n):  # events for the other app only
                other.deliver("ping", {}, 5.0, _no_calls, lambda *_: None)
            seen.append(spy.deliver("ping", {}, 5.0, _no_calls, lambda *_: None))
        gaps = [b - a for a, b in pairwise(seen)]
        # With a shared counter each gap is exactly 1 + the other app's events in between.
        assert gaps != [n + 1 for n in rounds], (seen, gaps)
        assert len(set(seen)) == len(seen)  # still one id per request
    finally:
        for child in (spy, other):
            child.kill("test over")
            child.close()
