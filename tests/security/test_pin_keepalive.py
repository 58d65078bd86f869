"""Frames that renew nothing cannot keep a child on the host's core (`host.supervise.burst`).

A burst's pin (after `BURST_CALLS` calls, another event running) and a start's (its load runs
the app's module code) are given back once the child goes `BURST_PATIENCE_MS` without a frame
(`FrameReader.patience`). Any frame reset that wait: an escaped child that sent an empty Log
frame every millisecond (no call, nothing charged, far under the Log flood's frame count) kept
its pin for the rest of its job, or of its load (up to `LOAD_TIMEOUT_S`). Now only a call renews
a burst's patience, and a load's is spent `BURST_PATIENCE_MS` after it began, whatever arrives.

The child is `sechelp.FAKE_CHILD`; the host side the real `Child` and `AppRunner`, with an
`Affinity` stand-in that records when the pins are given back.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sechelp import start_fake_child
from test_hostile_channel import _runner, hosts

from host.supervise.affinity import BURST_CALLS
from host.supervise.burst import loaded, patient_load
from host.supervise.watchdog import running_events

__all__ = ["hosts"]  # the fixture, used by name

# An empty Log frame about every millisecond for ~0.3 s: the keep-alive.
KEEP_ALIVE: list[list[Any]] = [["logs", 1, "", 1], ["sleep", 0.001]] * 300


class Pins:
    """Stands in for `Affinity`: every pin is granted; records when each is given back."""

    def __init__(self) -> None:
        self.given_back: list[float] = []

    def burst(self, _runner: object, _pid: int, *, apart: bool = False) -> bool:
        return True

    def unpin(self, _pid: int) -> None:
        self.given_back.append(time.monotonic())

    spread = unpin

    def settled(self, _runner: object, _pid: int) -> None:
        pass


def test_log_frames_do_not_keep_a_loading_child_on_the_hosts_core() -> None:
    child = start_fake_child([["hello"], ["recv"], *KEEP_ALIVE,
                              ["send", {"t": "loaded", "ok": True}], ["sleep", 60]])
    try:
        child.handshake("tok", lambda _t: None, degraded=False)
        pins = Pins()
        began = time.monotonic()
        patient_load(pins, child)  # type: ignore[arg-type]
        try:
            child.load("a", {"m": ""}, "m", "A", {}, lambda _t, _c: None)
        finally:
            loaded(child)
        took = time.monotonic() - began
        assert took > 0.2, took  # the keep-alive ran
        # before: never given back during the load
        assert pins.given_back and pins.given_back[0] - began < 0.1, (pins.given_back, took)
    finally:
        child.kill("test over")
        child.close()


def test_log_frames_do_not_keep_a_bursts_pin(hosts: list, tmp_path: Path) -> None:
    host, runner = _runner(hosts, [["hello"], ["event"], ["flood_calls", BURST_CALLS],
                                   *KEEP_ALIVE, ["done"]], tmp_path)
    pins = Pins()
    host.affinity = pins  # type: ignore[assignment]
    host.gate = SimpleNamespace(handle=lambda _s, _a, _args: None)  # type: ignore[assignment]
    running_events.add(1)  # another event runs: the burst is not alone, its pin is patient
    try:
        began = time.monotonic()
        runner.submit("x.y", {}, 10.0).result(20)
        ended = time.monotonic()
    finally:
        running_events.add(-1)
    assert ended - began > 0.2, ended - began  # the keep-alive ran
    # before: given back only when the job ended
    assert pins.given_back and ended - pins.given_back[0] > 0.15, (
        [t - began for t in pins.given_back], ended - began)
