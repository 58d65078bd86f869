"""A runner waiting out its restart backoff stops when told to, and starts nothing after.

Before: the pause before a dead child's restart was a plain `time.sleep` on the runner's
thread, holding the event that asked for the restart. `stop` (disable, uninstall, an update's
hand-over, the host stopping) waited 5 s for that thread, gave up and returned; the thread slept
on (up to `BACKOFF_MAX_S`, 30 s), then started a new child for the stopped runner and ran the
held event in it. A host stopping with N apps in backoff took 5 s per app.

Attacked with a real host and real zygote children, the deaths by SIGKILL (as the kernel's).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise import supervisor
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


def _into_backoff(runner: AppRunner) -> None:
    """Kill the running child; the event that finds it dead fails, and the next event waits
    out the restart's backoff on the runner's thread."""
    assert runner.submit("livechat.room_started", {}, 5.0).result(30) == 42
    child = runner.child
    assert child is not None
    os.kill(child.pid, signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(ChildDied):
        runner.submit("livechat.room_started", {}, 5.0).result(30)
    assert runner.state == "backoff"


def _host(tmp_path: Path, apps: list[str]) -> Host:
    home = Home(tmp_path / "home").ensure()
    for app in apps:
        install(home, write_app(tmp_path / "apps", app, ["livechat.read"],
                                ["livechat.room_started"], APP))
    return Host(home, config=HostConfig(watch=False, use_zygote=True, prefork=0))


def test_a_runner_in_backoff_stops_at_once_and_runs_nothing_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST_S", LONG_BACKOFF_S)
    with _host(tmp_path, ["backer"]) as host:
        (runner,) = host.runners.values()
        _into_backoff(runner)
        held = runner.submit("livechat.room_started", {}, 5.0)
        time.sleep(0.3)  # the runner's thread takes it and waits out the backoff
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
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST_S", LONG_BACKOFF_S)
    host = _host(tmp_path, ["first", "second"])
    host.start()
    try:
        runners = list(host.runners.values())
        for runner in runners:
            _into_backoff(runner)
            runner.submit("livechat.room_started", {}, 5.0)
        time.sleep(0.3)
    finally:
        t0 = time.monotonic()
        host.stop()
        took = time.monotonic() - t0
    assert took < PROMPT_S, f"the host took {took:.1f} s to stop (before: 5 s per app)"
    assert not any(r._thread.is_alive() for r in runners)
