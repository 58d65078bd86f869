"""A child that dies between events (the OOM killer's likeliest pick: every app child is its
first choice, `confine.OOM_SCORE_ADJ`, and an idle one is waiting, not working) costs the app
no event: the next one restarts it and runs; the death is still accounted and audited.

Before: the host had the child's exit in hand (the zygote reports it) but looked only at its
own kill flag, so the next event was written to the dead child and failed with `ChildDied`
("child killed (SIGKILL)"): an event lost that no child had ever received, for every app
whose idle child the kernel killed, and for every running app when the zygote died.

Attacked with a real host and real zygote children, killed by SIGKILL as the kernel kills.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from apphelp import install, write_app
from audithelp import audit_bodies

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import AppRunner

APP = '''
from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return 42
'''


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
    return Host(home, config=HostConfig(watch=False, use_zygote=True, prefork=1))


def _event(runner: AppRunner) -> object:
    return runner.submit("livechat.room_started", {}, 5.0).result(30)


def test_the_event_after_an_idle_childs_death_runs_in_a_new_child(tmp_path: Path) -> None:
    with _host(tmp_path, ["idler"]) as host:
        (runner,) = host.runners.values()
        assert _event(runner) == 42
        child = runner.child
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)
        _wait(child.has_exited, 10.0, "the zygote to report the exit")
        assert _event(runner) == 42  # before: ChildDied("child killed (SIGKILL)")
        assert runner.child is not child and runner.restarts == 1
        assert runner.last_error == "child killed (SIGKILL)"
    died = [b for b in audit_bodies(host.home) if b.get("event") == "child_died"]
    assert [b["detail"] for b in died] == ["child killed (SIGKILL)"], died


def test_a_fan_out_after_idle_deaths_reaches_every_app(tmp_path: Path) -> None:
    """The event pump (a post event to every idle app at once) claims no dead child either."""
    with _host(tmp_path, ["first", "second"]) as host:
        runners = list(host.runners.values())
        for runner in runners:
            assert _event(runner) == 42
        for runner in runners:
            child = runner.child
            assert child is not None
            os.kill(child.pid, signal.SIGKILL)
            _wait(child.has_exited, 10.0, "the zygote to report the exit")
        assert host.pump is not None
        delivery = host.pump.deliver("livechat.room_started", {}, 5.0, runners)
        assert delivery.outcomes(30) == [42, 42]  # before: two ChildDied


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead zygote's children, reparented, may wait to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_the_event_after_the_zygote_died_runs_in_a_new_child(tmp_path: Path) -> None:
    """A dead zygote reports no exit: its children (dead by their parent-death signal) are
    marked ended as soon as its channel closes, not at the next fork, which came only after
    each app's next event had failed on its dead child."""
    with _host(tmp_path, ["first", "second"]) as host:
        runners = list(host.runners.values())
        for runner in runners:
            assert _event(runner) == 42
        assert host.spawner is not None and host.spawner.zygote is not None
        old = host.spawner.zygote
        children = [r.child for r in runners]
        os.kill(old.pid, signal.SIGKILL)
        _wait(lambda: old.gone and not any(c is not None and _running(c.pid)
                                           for c in children), 10.0, "the children to die")
        time.sleep(0.2)  # the zygote's listener: its channel closed
        for runner in runners:
            assert _event(runner) == 42  # before: ChildDied("child exited") for each app
        assert host.spawner.zygotes_replaced == 1
