"""Between events an app's child may not compute (DESIGN rules 5 and 13).

An event's deadline ended at its Done frame, and nothing watched a child between events: an app
that escaped RestrictedPython could write its Done and keep computing, stopped only by
RLIMIT_CPU (an hour per child by default; a restart gave it another). The host's upkeep round
now reads each idle child's CPU time and kills a child that computes past a small allowance
while no event started or ended, audits why, and the app restarts as after any other kill.

Attacked with a real host and a real confined child whose app escaped (`escapehost`), with the
shipped round and allowance; a well-behaved app is watched over many sped-up rounds.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from apphelp import install, write_app
from audithelp import audit_bodies
from escapehost import PRELUDE, escape_apps

import host.rounds as rounds
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.child import ChildDied
from host.supervise.supervisor import AppRunner

ROUND_S = 0.1

SPINNER = PRELUDE + '''

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        loop = serving()
        loop["chan"].send_json(b'{"t": "done", "id": %d, "ok": true}' % loop["frame"].id)
        while True:  # answered; the host's deadline is over, and the app computes on
            pass
'''

# Answers each event at once and computes on between events, polling its channel so that the
# next event, however soon it comes, is answered at once too: never late for any deadline.
BETWEEN_EVENTS = PRELUDE + '''

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        loop = serving()
        chan, fid = loop["chan"], loop["frame"].id
        waiter = sys.modules["select"].poll()
        waiter.register(3, 1)  # the host's frames (fd 3), POLLIN
        while True:
            chan.send_json(b'{"t": "done", "id": %d, "ok": true}' % fid)
            while not waiter.poll(0):  # the host's next frame not yet here
                n = 0
                for i in range(20_000):
                    n += i
            fid = chan.recv().id
'''

WELL_BEHAVED = '''
from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        # work that leaves garbage behind for the child to free after its Done
        return len([{"n": i, "s": str(i)} for i in range(200_000)])
'''




def _wait(cond: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, f"timed out after {timeout} s: {what}"
        time.sleep(0.02)
    return time.monotonic() - start


def _host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> tuple[Home, Host]:
    escape_apps(monkeypatch, tmp_path)
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "spinner", ["livechat.read"],
                            ["livechat.room_started"], source))
    return home, Host(home, config=HostConfig(watch=False, use_zygote=False))


def _runner(host: Host) -> AppRunner:
    (runner,) = host.runners.values()
    return runner


def test_a_child_that_computes_after_its_done_is_killed_and_audited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the shipped round (2 s) and allowance: the first round that finds the child idle
    starts the measure, the next one kills it."""
    home, host = _host(tmp_path, monkeypatch, SPINNER)
    with host:
        runner = _runner(host)
        assert runner.submit("livechat.room_started", {}, 5.0).result(30) is None
        child = runner.child
        assert child is not None and not child.dead  # answered in time: no deadline kills it
        took = _wait(lambda: child.dead, 15.0, "the spinning child to be killed")
        assert took < 2 * rounds.CHECKPOINT_INTERVAL_S + 1.5, took
        assert child.death_code == "idle_compute", (child.death_code, child.death)
        _wait(child.has_exited, 5.0, "the spinning process to be gone")
        status = runner.status()
        assert "between events" in status["last_error"], status
        assert status["restarts"] == 1, status
        # the app restarts as after any other kill: its next event is served by a new child
        assert runner.submit("livechat.room_started", {}, 5.0).result(30) is None
        assert runner.child is not child and runner.child is not None
    kills = [b for b in audit_bodies(home) if b.get("kind") == "supervisor"
             and b.get("event") == "child_died" and "between events" in (b.get("detail") or "")]
    assert kills, [b for b in audit_bodies(home) if b.get("kind") == "supervisor"]
    assert "CPU" in kills[0]["detail"], kills[0]


def test_a_child_fed_events_often_is_killed_for_computing_between_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events every 0.3 s, more often than the shipped round (2 s): the watch saw no idle period
    across a whole round and never killed it (the finding); now its CPU beyond its time in
    events is counted whenever events come."""
    home, host = _host(tmp_path, monkeypatch, BETWEEN_EVENTS)
    with host:
        runner = _runner(host)
        assert runner.submit("livechat.room_started", {}, 5.0).result(30) is None
        child = runner.child
        assert child is not None
        start = time.monotonic()
        while not child.dead:
            assert time.monotonic() - start < 4 * rounds.CHECKPOINT_INTERVAL_S + 3, (
                "the child computing between frequent events was never killed")
            try:
                runner.submit("livechat.room_started", {}, 5.0).result(30)  # answered at once
            except ChildDied:  # the kill landed while this event was with it
                break
            time.sleep(0.3)
        assert child.dead and child.death_code == "idle_compute", (child.death_code, child.death)
    kills = [b for b in audit_bodies(home) if b.get("kind") == "supervisor"
             and b.get("event") == "child_died" and "between events" in (b.get("detail") or "")]
    assert len(kills) == 1, [b for b in audit_bodies(home) if b.get("kind") == "supervisor"]


def test_a_well_behaved_idle_app_is_never_killed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rounds, "CHECKPOINT_INTERVAL_S", ROUND_S)
    home, host = _host(tmp_path, monkeypatch, WELL_BEHAVED)
    with host:
        runner = _runner(host)
        for _ in range(3):
            assert runner.submit("livechat.room_started", {}, 5.0).result(30) == 200_000
            child = runner.child
            time.sleep(25 * ROUND_S)  # many rounds, every one finding the child idle
            assert runner.child is child and child is not None and not child.dead, (
                child and child.death)
        status = runner.status()
        assert status["restarts"] == 0 and status["last_error"] == "", status
    assert not [b for b in audit_bodies(home) if b.get("kind") == "supervisor"
                and b.get("event") == "child_died"]
