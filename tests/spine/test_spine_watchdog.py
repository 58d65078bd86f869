"""The watchdog: a live deadline always kills; finished events cost it nothing later.

The children here are stand-ins (the watchdog only reads `ticket` and `deadline_s` and calls
`kill`); real children killed at their deadline are covered by test_spine_pump,
test_spine_supervisor and tests/security/test_dos.py.
"""
from __future__ import annotations

import threading
import time
from typing import Any, cast

from host.supervise.child import Child
from host.supervise.watchdog import Watchdog


class _Stub:
    def __init__(self) -> None:
        self.ticket = 0
        self.deadline_s = 0.0
        self.killed = threading.Event()
        self.reasons: list[str] = []

    def kill(self, reason: str, code: str = "killed") -> None:
        self.reasons.append(f"{code}: {reason}")
        self.killed.set()

    def arm(self, dog: Watchdog, seconds: float) -> None:
        self.ticket += 1
        self.deadline_s = seconds
        dog.arm(cast(Child, cast(Any, self)), seconds, self.ticket)

    def finish(self) -> None:
        self.ticket += 1


def test_finished_events_do_not_pile_up() -> None:
    dog = Watchdog()
    child = _Stub()
    for _ in range(10_000):
        child.arm(dog, 30.0)
        child.finish()
    # At most the last (finished) entry is still held; a heap kept all 10 000 for 30 s.
    assert dog.pending() <= 1
    assert not child.killed.is_set()


def test_a_live_deadline_fires_behind_finished_ones() -> None:
    dog = Watchdog()
    busy, hung = _Stub(), _Stub()
    for _ in range(100):
        busy.arm(dog, 0.2)
        busy.finish()
    hung.arm(dog, 0.2)
    for _ in range(100):
        busy.arm(dog, 0.2)
        busy.finish()
    assert hung.killed.wait(5), "the hung child's deadline never fired"
    assert hung.reasons == ["timeout: deadline of 0.2s exceeded"]
    time.sleep(0.3)
    assert not busy.killed.is_set()


def test_a_shorter_deadline_wakes_the_thread_early() -> None:
    dog = Watchdog()
    slow, fast = _Stub(), _Stub()
    slow.arm(dog, 60.0)
    time.sleep(0.05)  # the thread now sleeps until the 60 s deadline
    t0 = time.monotonic()
    fast.arm(dog, 0.1)
    assert fast.killed.wait(5)
    assert time.monotonic() - t0 < 5
    assert not slow.killed.is_set()
    slow.finish()


def test_one_entry_for_a_fan_out_kills_only_the_child_still_running() -> None:
    dog = Watchdog()
    kids = [_Stub() for _ in range(20)]
    pairs = []
    for kid in kids:
        kid.ticket += 1
        kid.deadline_s = 0.2
        pairs.append((cast(Child, cast(Any, kid)), kid.ticket))
    dog.arm_many(pairs, 0.2)
    for kid in kids[1:]:
        kid.finish()
    assert kids[0].killed.wait(5), "the hung child of the fan-out was not killed"
    time.sleep(0.1)
    assert [k.killed.is_set() for k in kids[1:]] == [False] * 19
    assert dog.pending() == 0
