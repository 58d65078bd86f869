"""A runner waiting out its restart backoff stops when told to, and starts nothing after.

Before: the pause before a dead child's restart was a plain `time.sleep` on the runner's
thread, holding the event that asked for the restart. `stop` (disable, uninstall, an update's
hand-over, the host stopping) waited 5 s for that thread, gave up and returned; the thread slept
on (up to `BACKOFF_MAX_S`, 30 s), then started a new child for the stopped runner and ran the
held event in it. A host stopping with N apps in backoff took 5 s per app.

Attacked with a real host and real zygote children, the deaths by SIGKILL (as the kernel's)
while idle: the next event accounts the death and waits out the backoff, holding the event.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise import restarts
from host.supervise.child import ChildDied
from host.supervise.supervisor import AppRunner

APP = '''
from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return 42
'''
# A pause far longer than the test: a start after the stop could only come from a thread that
# outlived it.
LONG_BACKOFF_S = 60.0
PROMPT_S = 2.0  # what "at once" means here (the join's own give-up was 5 s)


def _into_backoff(runner: AppRunner) -> Future[Any]:
    """Kill the idle child (as the kernel would); the next event finds it dead, accounts the
    death and waits out the restart's backoff on the runner's thread, holding that event."""
    assert runner.submit("livechat.room_started", {}, 5.0).result(30) == 42
    child = runner.child
    assert child is not None
    os.kill(child.pid, signal.SIGKILL)
    _wait(child.has_exited, 10.0, "the zygote to report the exit")
    held = runner.submit("livechat.room_started", {}, 5.0)
    _wait(lambda: runner.state == "backoff", 10.0, "the runner to wait out its backoff")
    time.sleep(0.1)  # past the state's change: in the pause itself
    return held


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out: {what}"
        time.sleep(0.02)


def _host(tmp_path: Path, apps: list[str]) -> Host:
    home = Home(tmp_path / "home").ensure()
    for app in apps:
        install(home, write_app(tmp_path / "apps", app, ["livechat.read"],
                                ["livechat.room_started"], APP))
    return Host(home, config=HostConfig(watch=False, use_zygote=True, prefork=0))


def test_a_runner_in_backoff_stops_at_once_and_runs_nothing_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "BACKOFF_FIRST_S", LONG_BACKOFF_S)
    with _host(tmp_path, ["backer"]) as host:
        (runner,) = host.runners.values()
        held = _into_backoff(runner)
        started: list[float] = []
        real = host.start_child
        monkeypatch.setattr(host, "start_child",
                            lambda r: (started.append(time.monotonic()), real(r))[1])
        t0 = time.monotonic()
        runner.stop("test stop")
        took = time.monotonic() - t0
        assert took < PROMPT_S, f"stop took {took:.1f} s"
        assert not runner._thread.is_alive(), "the runner's thread outlived its stop"
        with pytest.raises(ChildDied):  # before: 42, from a child started after the stop
            held.result(PROMPT_S)
        assert started == [] and runner.child is None


def test_a_host_with_apps_in_backoff_stops_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restarts, "BACKOFF_FIRST_S", LONG_BACKOFF_S)
    host = _host(tmp_path, ["first", "second"])
    host.start()
    try:
        runners = list(host.runners.values())
        for runner in runners:
            _into_backoff(runner)
    finally:
        t0 = time.monotonic()
        host.stop()
        took = time.monotonic() - t0
    assert took < PROMPT_S, f"the host took {took:.1f} s to stop (before: 5 s per app)"
    assert not any(r._thread.is_alive() for r in runners)
