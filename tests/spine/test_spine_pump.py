"""The event pump: one thread delivers a post event to every idle app (`host.supervise.pump`).

What it must keep from the per-app runners: every app gets the event and its result, events
for one app stay in order, a handler that talks (bridge call, print) is finished by its own
runner, a slow handler never holds up another app, deadlines still kill, and a child that
stops reading its channel cannot stall the pump.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.child import Child, ChildDied
from sandbox.wire import encode

APPS = ("alpha", "beta", "gamma")
STARTED = "livechat.room_started"
CLOSED = "livechat.room_closed"

SRC = '''
import time
from stockade import App

class TestApp(App):
    def __init__(self):
        self.seen = []

    def on_livechat_room_started(self, ctx, event):
        mode = event.get("mode")
        if mode == "slow":
            time.sleep(1.5)
        if mode == "hang":
            time.sleep(1000)
        if mode == "print":
            print("printed", event["n"])
        if mode == "call":
            try:
                ctx.users.get("no-such-user")
            except Exception as exc:
                return "called:" + exc.code
        self.seen.append(event["n"])
        return list(self.seen)

    def on_livechat_room_closed(self, ctx, event):
        return "closed:" + str(event["n"])
'''

POLICY = '''
schema = 1
name = "pump"
[[rule]]
id = "pump-read"
effect = "permit"
apps = ["alpha", "beta", "gamma"]
actions = ["livechat.read"]
'''


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[Host]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "pump", POLICY)
    for app_id in APPS:
        install(home, write_app(tmp_path / "apps", app_id, ["livechat.read"], [STARTED, CLOSED],
                                SRC))
    h = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    for runner in h.runners.values():
        runner.ensure_started()
    try:
        yield h
    finally:
        h.stop()


def _runner(h: Host, app_id: str):  # type: ignore[no-untyped-def]
    return next(r for r in h.runners.values() if r.app_id == app_id)


def _pump(h: Host):  # type: ignore[no-untyped-def]
    assert h.pump is not None
    return h.pump


def test_every_idle_app_gets_the_event_from_the_pump(host: Host) -> None:
    landed = _pump(host).landed
    delivery = host.dispatch(STARTED, {"n": 7})
    assert delivery.app_ids == ("alpha", "beta", "gamma")
    assert delivery.results(10) == [[7], [7], [7]]
    assert _pump(host).landed == landed + 3  # finished by the pump, not the runner threads


def test_events_for_one_app_stay_in_order(host: Host) -> None:
    deliveries = [host.dispatch(STARTED, {"n": n}) for n in range(60)]
    for n, delivery in enumerate(deliveries):
        assert delivery.results(10) == [list(range(n + 1))] * 3


def test_a_handler_that_calls_the_bridge_is_finished_by_its_runner(host: Host) -> None:
    handed = _pump(host).handed
    delivery = host.dispatch(STARTED, {"n": 1, "mode": "call"})
    assert delivery.results(10) == ["called:permission_denied"] * 3  # the gate answered it
    assert _pump(host).handed == handed + 3
    # and the app is claimable again afterwards
    landed = _pump(host).landed
    assert host.dispatch(STARTED, {"n": 2}).results(10) == [[2]] * 3
    assert _pump(host).landed == landed + 3


def test_a_handler_that_prints_is_finished_by_its_runner(host: Host) -> None:
    assert host.dispatch(STARTED, {"n": 5, "mode": "print"}).results(10) == [[5]] * 3
    log = host.home.logs_dir / f"{_runner(host, 'alpha').install_id}.log"
    assert "printed 5" in log.read_text()


def test_a_slow_handler_does_not_hold_up_other_apps(host: Host) -> None:
    alpha = _runner(host, "alpha")
    slow = alpha.submit(STARTED, {"n": 0, "mode": "slow"}, 5.0)  # alpha busy for 1.5 s
    deliveries = [host.dispatch(CLOSED, {"n": n}) for n in range(20)]
    deadline = time.monotonic() + 10
    while any(d.pending() != ("alpha",) for d in deliveries) and time.monotonic() < deadline:
        time.sleep(0.01)  # until beta and gamma have finished all 20
    assert [d.pending() for d in deliveries] == [("alpha",)] * 20
    assert not slow.done()  # the others finished while alpha was still sleeping
    assert deliveries[-1].results(10) == ["closed:19"] * 3  # alpha too, in order
    assert slow.result(10) == [0]


def test_a_hung_handler_is_killed_at_its_deadline(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "pump", POLICY)
    install(home, write_app(tmp_path / "apps", "alpha", ["livechat.read"], [STARTED], SRC))
    with Host(home, config=HostConfig(event_deadline_s=0.5)) as h:
        runner = _runner(h, "alpha")
        runner.ensure_started()
        delivery = h.dispatch(STARTED, {"n": 1, "mode": "hang"})
        with pytest.raises(ChildDied) as err:
            delivery.results(10)
        assert err.value.code == "timeout"
        assert delivery.failures() == {"alpha": err.value}
        assert h.dispatch(STARTED, {"n": 2}).results(10) == [[2]]  # restarted


def test_a_child_that_stops_reading_is_killed_not_waited_for() -> None:
    # The peer plays an escaped child: a live process that never reads its channel.
    proc = subprocess.Popen(["sleep", "60"])
    to_r, to_w = os.pipe2(os.O_CLOEXEC)
    from_r, from_w = os.pipe2(os.O_CLOEXEC)
    child = Child(pid=proc.pid, session_id="s" * 32, to_child=to_w, from_child=from_r,
                  err_fd=-1, popen=proc)
    try:
        filled = 0
        while True:  # fill the channel the way unread frames would
            try:
                filled += os.write(to_w, b"x" * 4096)
            except BlockingIOError:
                break
        assert filled > 0
        with pytest.raises(ChildDied) as err:
            child.begin_event(encode(b'{"t":"event"}'))  # must return, not block
        assert err.value.code == "protocol"
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        proc.kill()
        for fd in (to_r, from_w):
            os.close(fd)
        child.close()


def test_an_app_with_queued_events_is_not_claimed(host: Host) -> None:
    # The instant between two queued jobs: nothing running, one waiting. A claim then would
    # let the pump's event overtake the waiting one. Holding the runner's lock keeps its
    # thread from taking the job while we look.
    from host.supervise.supervisor import Job

    alpha = _runner(host, "alpha")
    waiting = Job(STARTED, {"n": 1}, 5.0)
    with alpha._cv:
        alpha._jobs.append(waiting)
        assert alpha.try_claim() is None
        alpha._jobs.remove(waiting)
        assert alpha.try_claim() is alpha.child  # idle again: claimable
        alpha._claimed = False


def test_a_disabled_or_removed_app_stops_receiving_events_at_once(host: Host) -> None:
    # The receivers of an event are cached per event name: the cache must not outlive a change
    # of the running set (a disabled app must not keep getting room data).
    assert host.dispatch(STARTED, {"n": 1}).app_ids == APPS
    beta = _runner(host, "beta").install_id
    host.installs.set_enabled(beta, False, "test")
    host.sync_installs()
    delivery = host.dispatch(STARTED, {"n": 2})
    assert delivery.app_ids == ("alpha", "gamma")
    assert delivery.results(10) == [[1, 2], [1, 2]]
    host.installs.set_enabled(beta, True)
    host.sync_installs()
    assert host.dispatch(STARTED, {"n": 3}).app_ids == APPS
    host.installs.remove(_runner(host, "gamma").install_id)
    host.sync_installs()
    assert host.dispatch(CLOSED, {"n": 4}).app_ids == ("alpha", "beta")
    assert host.dispatch("no.such_event", {}).app_ids == ()


def test_an_app_without_the_events_grant_never_receives_it(tmp_path: Path) -> None:
    # livechat events need livechat.read: "delta" declares the event but its operator
    # consented to nothing, so it must not see room data (grant = manifest ∩ consent ∩ policy).
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "pump", POLICY.replace('"gamma"]', '"gamma", "delta"]'))
    install(home, write_app(tmp_path / "apps", "alpha", ["livechat.read"], [STARTED], SRC))
    install(home, write_app(tmp_path / "apps", "delta", ["livechat.read"], [STARTED], SRC),
            grants=[])
    with Host(home, config=HostConfig(event_deadline_s=5.0)) as h:
        assert {r.app_id for r in h.runners.values()} == {"alpha", "delta"}  # both running
        delivery = h.dispatch(STARTED, {"n": 1})
        assert delivery.app_ids == ("alpha",)
        assert delivery.results(10) == [[1]]


def test_an_event_the_pump_has_not_started_keeps_the_host_busy(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Host.wait_idle` (which the demo and the story tests wait on) must not call the host idle
    while an event waits in the pump's inbox or is being handed out: the runners look idle
    then, and a delayed pump thread let it return before any app had the event."""
    pump = _pump(host)
    real_start = pump._start

    def late_start(batch):  # type: ignore[no-untyped-def]
        time.sleep(0.4)  # a pump thread kept off the CPU, as under a loaded CI machine
        real_start(batch)

    monkeypatch.setattr(pump, "_start", late_start)
    delivery = host.dispatch(STARTED, {"n": 1})
    assert host.wait_idle(10)
    assert delivery.done(), "wait_idle returned with the event still in the pump"
    assert delivery.results(1) == [[1], [1], [1]]
