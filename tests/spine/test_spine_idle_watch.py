"""The idle watch: an app's child that computes between events is killed, and only then.

`IdleWatch` here meets stand-in runners and an injected CPU clock, so every case is exact: a
period is measured only between two rounds that find the runner idle at one ticket, its work
adds up across rounds, and a runner that refuses the kill (an event started meanwhile) keeps
its child. Then a real `AppRunner` with a real process: its `stop_idle_compute` never kills
while an event is claimed, or once the child's ticket moved. A real host and an escaped app:
tests/security/test_idle_compute.py.
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
from host.supervise.watchdog import IDLE_CPU_ALLOWANCE_S, IDLE_SLICE_APPS, IdleWatch


class _Runner:
    def __init__(self) -> None:
        self.child: object = object()
        self.ticket = 2
        self.busy = False
        self.refuse = False
        self.kills: list[str] = []

    def idle_child(self) -> tuple[object, int, int] | None:
        return None if self.busy else (self.child, 1, self.ticket)

    def stop_idle_compute(self, child: object, ticket: int, reason: str) -> bool:
        assert child is self.child and ticket == self.ticket
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
    return IdleWatch(cpu=clock), clock, _Runner()


def test_a_child_computing_through_a_whole_idle_period_is_killed() -> None:
    watch, clock, runner = _watch()
    assert watch.round({"a": runner}) == []  # the period starts
    clock.cpu = 10.0 + IDLE_CPU_ALLOWANCE_S + 0.2
    assert watch.round({"a": runner}) == ["a"]
    assert "between events" in runner.kills[0] and "CPU" in runner.kills[0]


def test_idle_work_adds_up_across_rounds() -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    for _ in range(int(IDLE_CPU_ALLOWANCE_S / 0.1)):
        clock.cpu = (clock.cpu or 0) + 0.1  # each round under the allowance on its own
        assert watch.round({"a": runner}) == []
    clock.cpu = (clock.cpu or 0) + 0.1
    assert watch.round({"a": runner}) == ["a"]


def test_a_child_within_its_allowance_is_kept_however_long_it_idles() -> None:
    watch, clock, runner = _watch()
    for i in range(100):
        clock.cpu = 10.0 + IDLE_CPU_ALLOWANCE_S * i / 100  # a garbage collection's worth
        assert watch.round({"a": runner}) == []
    assert runner.kills == []


@pytest.mark.parametrize("change", ["event started and ended", "busy", "new child"])
def test_cpu_across_an_event_is_never_counted_as_idle(change: str) -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    clock.cpu = 100.0  # the event's work
    if change == "event started and ended":
        runner.ticket += 2
    elif change == "busy":
        runner.busy = True
        assert watch.round({"a": runner}) == []
        runner.busy = False
        runner.ticket += 2
    else:
        runner.child = object()
    assert watch.round({"a": runner}) == []  # a new period starts here, at 100 s
    clock.cpu = 100.0 + IDLE_CPU_ALLOWANCE_S / 2
    assert watch.round({"a": runner}) == [] and runner.kills == []


def test_a_refused_kill_is_not_reported_and_a_gone_child_is_skipped() -> None:
    watch, clock, runner = _watch()
    watch.round({"a": runner})
    clock.cpu = 100.0
    runner.refuse = True  # an event started between the CPU read and the kill
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


def _when_idle(runner: AppRunner) -> tuple[Child, int, int]:
    """`idle_child` once the start job has ended (its future is answered a moment before)."""
    end = time.monotonic() + 5
    while (idle := runner.idle_child()) is None:
        assert time.monotonic() < end, "the runner never became idle"
        time.sleep(0.005)
    return idle


def test_the_runner_kills_only_an_idle_child_at_the_ticket_read() -> None:
    host = _Host()
    runner = AppRunner(host, SimpleNamespace(install_id="i-1", app_id="a"))  # type: ignore[arg-type]
    try:
        runner.ensure_started()
        idle = _when_idle(runner)
        child, pid, ticket = idle
        assert child is runner.child and pid == child.pid
        # an event in the pump: the runner is busy, nothing to read and nothing to kill
        runner.session = SimpleNamespace(session_id=child.session_id)  # type: ignore[assignment]
        assert runner.try_claim() is child
        assert runner.idle_child() is None
        assert not runner.stop_idle_compute(child, ticket, "no")
        with runner._cv:  # (the pump would finish it or hand it over; released here)
            runner._claimed = False
        # an event started and ended since the ticket was read
        child.new_deadline(1.0)
        child._disarm()
        assert not runner.stop_idle_compute(child, ticket, "no")
        assert not child.dead and host.audited == []
        # still idle at the ticket read: killed, accounted and audited as any death
        ticket = child.ticket
        assert runner.stop_idle_compute(child, ticket, "killed: it computed between events")
        assert child.dead and child.death_code == "idle_compute"
        assert not runner.stop_idle_compute(child, ticket, "twice")  # once
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
