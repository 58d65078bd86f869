"""The idle watch: an app's child that computes between events is killed, and only then.

`IdleWatch` here meets stand-in runners, an injected CPU clock and injected time in events, so
every case is exact: what the CPU grew by beyond the time in events (less a tick) is idle CPU;
it adds up over the window and is never offset by slow events; a child is killed past the
allowance however often its events come, and a new child is measured afresh. Then a real
`AppRunner` with a real process: `stop_idle_compute` kills and accounts once, even when an
event was running. A real host and an escaped app: tests/security/test_idle_compute.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from host.supervise.affinity import Affinity
from host.supervise.child import Child
from host.supervise.procfs import _read
from host.supervise.supervisor import AppRunner
from host.supervise.watchdog import (
    CPU_TICK_S,
    IDLE_CPU_ALLOWANCE_S,
    IDLE_SLICE_APPS,
    IDLE_WINDOW_ROUNDS,
    IdleWatch,
)


class _Runner:
    def __init__(self) -> None:
        self.child: object = object()
        self.busy = 0.0  # seconds the child has spent in events
        self.refuse = False
        self.kills: list[str] = []

    def watched_child(self) -> tuple[object, int] | None:
        return None if self.child is None else (self.child, 1)

    def busy_seconds(self, child: object) -> float:
        assert child is self.child
        return self.busy

    def stop_idle_compute(self, child: object, reason: str) -> bool:
        assert child is self.child
        if self.refuse:
            return False
        self.kills.append(reason)
        return True


class _Clock:
    def __init__(self) -> None:
        self.cpu: float | None = 10.0

    def __call__(self, _pid: int) -> float | None:
        return self.cpu


def _watch() -> tuple[IdleWatch, _Clock, _Runner]:
    clock = _Clock()
    return IdleWatch(cpu=clock, pause=lambda: None), clock, _Runner()


def _spend(clock: _Clock, runner: _Runner, *, idle: float, in_events: float = 0.0) -> None:
    """Between two rounds: `in_events` seconds of events, all CPU, and `idle` CPU outside."""
    clock.cpu = (clock.cpu or 0.0) + idle + in_events
    runner.busy += in_events


def test_a_child_computing_between_events_is_killed() -> None:
    watch, clock, runner = _watch()
    assert watch.round({"a": runner}) == []  # measured from here
    _spend(clock, runner, idle=IDLE_CPU_ALLOWANCE_S + 0.2)
    assert watch.round({"a": runner}) == ["a"]
    assert "between events" in runner.kills[0] and "CPU" in runner.kills[0]


def test_it_is_killed_however_often_its_events_come() -> None:
    """The finding: the watch measured only idle periods spanning a whole round, so an app fed
    events more often than every 2 s answered each at once and computed on between them."""
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    rounds = 0
    while not runner.kills:
        _spend(clock, runner, idle=0.3, in_events=0.01)  # events all through every round
        watch.round({"a": runner})
        rounds += 1
        assert rounds < 5
    assert rounds == 2  # 0.6 s, less two ticks, is past 0.5 s


def test_idle_work_adds_up_over_the_window_and_ages_out() -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    step = IDLE_CPU_ALLOWANCE_S / 5  # each round well under the allowance on its own
    for _ in range(4):
        _spend(clock, runner, idle=step + CPU_TICK_S)
        assert watch.round({"a": runner}) == []
    for _ in range(IDLE_WINDOW_ROUNDS):  # quiet rounds: the work ages out of the window
        assert watch.round({"a": runner}) == []
    for _ in range(4):
        _spend(clock, runner, idle=step + CPU_TICK_S)
        assert watch.round({"a": runner}) == []
    _spend(clock, runner, idle=2 * step + CPU_TICK_S)  # within the window: 6 steps in all
    assert watch.round({"a": runner}) == ["a"]


def test_cpu_within_events_is_never_idle_and_slow_events_earn_no_credit() -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    for _ in range(3 * IDLE_WINDOW_ROUNDS):  # busy all the time, all of it CPU, to the tick
        _spend(clock, runner, idle=CPU_TICK_S, in_events=1.9)
        assert watch.round({"a": runner}) == []
    for _ in range(5):  # events that mostly waited on the host: their CPU well under their time
        _spend(clock, runner, idle=0.0, in_events=1.9)
        clock.cpu = (clock.cpu or 0.0) - 1.5
        watch.round({"a": runner})
    _spend(clock, runner, idle=IDLE_CPU_ALLOWANCE_S + 0.1)  # no credit from those
    assert watch.round({"a": runner}) == ["a"]


def test_a_new_child_is_measured_afresh() -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    _spend(clock, runner, idle=100.0)
    runner.child = object()  # restarted since: the CPU read is the new child's
    runner.busy = 0.0
    assert watch.round({"a": runner}) == []
    _spend(clock, runner, idle=IDLE_CPU_ALLOWANCE_S / 2)
    assert watch.round({"a": runner}) == [] and runner.kills == []


def test_a_refused_kill_is_not_reported_and_a_gone_child_is_skipped() -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    _spend(clock, runner, idle=100.0)
    runner.refuse = True  # the child was replaced between the CPU read and the kill
    assert watch.round({"a": runner}) == []
    clock.cpu = None  # the process is gone
    assert watch.round({"a": runner}) == []


def test_a_round_pauses_between_slices_and_still_watches_every_app() -> None:
    clock = _Clock()
    pauses: list[int] = []
    watch = IdleWatch(cpu=clock, pause=lambda: pauses.append(1))
    runners = {f"app{i}": _Runner() for i in range(IDLE_SLICE_APPS * 3 + 1)}
    assert watch.round(runners) == [] and len(pauses) == 3  # after each full slice
    clock.cpu = 100.0  # every app computed since: the last, after three pauses, too
    assert watch.round(runners) == sorted(runners, key=lambda k: int(k[3:]))
    assert len(pauses) == 6


def test_a_proc_file_longer_than_a_read_is_read_whole(tmp_path: Any) -> None:
    # a child that forked many lists more pids than one page holds: none may be left out
    listing = b" ".join(str(n).encode() for n in range(100_000, 102_000))
    (tmp_path / "children").write_bytes(listing)
    assert _read(str(tmp_path / "children")) == listing


# ---- a real runner -----------------------------------------------------------------------------


class _Host:
    """The `RunnerHost` an `AppRunner` needs; its children are plain sleeping processes."""

    def __init__(self) -> None:
        self.affinity = Affinity(enabled=False)
        self.audited: list[tuple[str, str]] = []
        self.noted: list[str] = []
        self.children: list[Child] = []

    def first_job_over(self) -> None:
        pass  # no pre-fork pool here

    def start_child(self, _runner: AppRunner) -> Child:
        to_r, to_w = os.pipe2(os.O_CLOEXEC)
        from_r, from_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                stdin=to_r, stdout=from_w, stderr=err_w)
        for fd in (to_r, from_w, err_w):
            os.close(fd)
        child = Child(pid=proc.pid, session_id="s" * 32, to_child=to_w, from_child=from_r,
                      err_fd=err_r, popen=proc)
        self.children.append(child)
        return child

    def audit_supervisor(self, _runner: AppRunner, event: str, detail: str) -> None:
        self.audited.append((event, detail))

    def write_app_log(self, *_args: Any) -> None:
        pass

    def note_app_log(self, _install_id: str, text: str) -> None:
        self.noted.append(text)

    def event_allowed(self, _install: Any, _event: str, _under: object, _payload: Any) -> bool:
        return True  # no policy here: every event the app handles reaches it


def _when_running(runner: AppRunner) -> tuple[Child, int]:
    """`watched_child` once the start job has ended (its future is answered a moment before
    the job is done: until then the runner is busy, and an event cannot be claimed)."""
    end = time.monotonic() + 5
    while (live := runner.watched_child()) is None or not runner.idle():
        assert time.monotonic() < end, "the runner never ran its child"
        time.sleep(0.005)
    return live


def test_a_child_keeps_its_time_in_events() -> None:
    host = _Host()
    runner = AppRunner(host, SimpleNamespace(install_id="i-1", app_id="a", crash_stop=None,
                                           settings={}, secret_keys=frozenset()))  # type: ignore[arg-type]
    try:
        runner.ensure_started()
        child, _pid = _when_running(runner)
        before = runner.busy_seconds(child)
        child.new_deadline(1.0)
        time.sleep(0.2)
        assert runner.busy_seconds(child) - before >= 0.2  # the running event counts
        child._disarm()
        after = runner.busy_seconds(child)
        time.sleep(0.1)
        assert 0.2 <= after - before < 1.0 and runner.busy_seconds(child) == after
    finally:
        runner.stop("test over")
        for c in host.children:
            c.kill("test over")
            c.close()


@pytest.mark.parametrize("in_event", [False, True], ids=["between events", "in an event"])
def test_the_runner_kills_and_accounts_once(in_event: bool) -> None:
    host = _Host()
    runner = AppRunner(host, SimpleNamespace(install_id="i-1", app_id="a", crash_stop=None,
                                           settings={}, secret_keys=frozenset()))  # type: ignore[arg-type]
    try:
        runner.ensure_started()
        child, pid = _when_running(runner)
        assert child is runner.child and pid == child.pid
        assert not runner.stop_idle_compute(object(), "no")  # not its child: nothing done
        assert not child.dead and host.audited == []
        if in_event:  # an event in the pump when the kill comes: it fails on the death
            runner.session = SimpleNamespace(session_id=child.session_id)  # type: ignore[assignment]
            assert runner.try_claim() is child
        assert runner.stop_idle_compute(child, "killed: it computed between events")
        assert child.dead and child.death_code == "idle_compute"
        assert not runner.stop_idle_compute(child, "twice")  # once
        if in_event:  # the event's own failure path, as the pump hands it back
            with runner._cv:
                runner._claimed = False
            runner._child_died("child closed its channel", "idle_compute")
        status = runner.status()
        assert status["restarts"] == 1 and status["state"] == "backoff", status
        assert host.audited == [("child_died", "killed: it computed between events")]
        assert host.noted == ["killed: it computed between events"]
        # the next job starts a new child
        runner.ensure_started()
        assert runner.child is not child and runner.child is not None
        assert child.popen is not None and child.popen.wait(5) == -9  # SIGKILL
    finally:
        runner.stop("test over")
        for c in host.children:
            c.kill("test over")
            c.close()
