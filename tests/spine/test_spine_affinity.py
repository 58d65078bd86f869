"""Each app's child and its runner thread share one core where hand-offs sleep, or sit on two
cores apart and poll in a burst that runs alone (`host.supervise.affinity`; docs/BENCH.md,
"One core or two, and pinned pairs", "Bursts alone, on two cores apart")."""
from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from corehelp import core_claimed

from host.home import Home
from host.runtime import Host, HostConfig
from host.server.front import RestFront
from host.server.listen import tcp_listener
from host.supervise import burst
from host.supervise.affinity import BURST_CALLS, Affinity
from sandbox.wire import SPIN_MIN_CPUS


class Owner:
    """A runner stand-in (the affinity keeps its owners weakly)."""


SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def test_pairs_are_spread_round_robin_only_where_hand_offs_sleep() -> None:
    two = Affinity(cpus={3, 5})
    owners = [Owner() for _ in range(4)]
    assert [two.core_of(o) for o in owners] == [3, 5, 3, 5]
    assert two.core_of(owners[0]) == 3  # kept for the owner's restarts
    assert Affinity(cpus={0}).core_of(owners[0]) is None  # one core: nothing to choose
    assert Affinity(cpus=set(range(SPIN_MIN_CPUS))).core_of(owners[0]) is None  # spinning
    assert Affinity(cpus={0, 1}, enabled=False).core_of(owners[0]) is None


def test_pin_puts_the_calling_thread_and_the_child_on_one_core() -> None:
    cores = sorted(os.sched_getaffinity(0))
    aff = Affinity(cpus=set(cores[:2]) if len(cores) >= 2 else {0, 1})
    if not aff.cores:  # a one-core machine: pinning cannot be shown, refusal can
        assert Affinity(cpus=set(cores)).core_of(Owner()) is None
        return
    child = subprocess.Popen(["sleep", "30"])
    seen: list[set[int]] = []

    def runner() -> None:
        aff.pin(owner, child.pid)
        seen.append(os.sched_getaffinity(0))

    owner = Owner()
    try:
        t = threading.Thread(target=runner)
        t.start()
        t.join(10)
        core = aff.core_of(owner)
        assert seen == [{core}]
        assert os.sched_getaffinity(child.pid) == {core}
        assert os.sched_getaffinity(0) == set(cores)  # only that thread, not the process
    finally:
        child.kill()
        child.wait()


def test_a_host_that_may_not_pin_runs_unpinned_and_says_so(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    aff = Affinity(cpus={0, 1})
    real = os.sched_setaffinity

    def refuse(pid: int, cpus: object) -> None:
        if pid != 0:
            raise PermissionError(1, "Operation not permitted")
        real(pid, cpus)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    before = os.sched_getaffinity(0)
    with caplog.at_level(logging.WARNING, "stockade.affinity"):
        t = threading.Thread(target=aff.pin, args=(Owner(), os.getpid()))
        t.start()
        t.join(10)
    assert aff.cores == []
    assert "unpinned" in caplog.text
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("pin", [True, False])
def test_a_started_app_shares_its_runners_core_when_asked(tmp_path: Path, pin: bool) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "pinned", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    with Host(home, config=HostConfig(pin_apps=pin, host_core=False)) as h:
        runner = next(iter(h.runners.values()))
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        assert runner.child is not None
        child_cpus = os.sched_getaffinity(runner.child.app_pid())
        thread_cpus = os.sched_getaffinity(runner._thread.native_id or 0)
        everywhere = os.sched_getaffinity(0)
        if pin and h.affinity.cores:
            core = h.affinity.core_of(runner)
            assert core is not None and child_cpus == thread_cpus == {core}
        else:  # not asked (the default), or a machine where hand-offs spin: nothing pinned
            assert child_cpus == thread_cpus == everywhere


LOOP_SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        for i in range(event["n"]):
            ctx.store.put("k", i)
        return "ok"
'''


SLEEPER_SRC = '''
from stockade import App
import time

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(event["s"])
        return "ok"
'''


@pytest.mark.parametrize(("bursts", "calls", "alone", "host_core"),
                         [(True, 40, True, False), (True, 40, False, False),
                          (True, BURST_CALLS - 1, True, False), (False, 40, True, False),
                          (True, 40, True, True), (True, 40, False, True)])
def test_a_handler_making_many_calls_is_pinned_until_it_ends(
        tmp_path: Path, bursts: bool, calls: int, alone: bool, host_core: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst alone: its pair on two cores apart, and both ends poll (each Reply says
    `spin`). With another event running: on one core, no polling; where the host's threads
    share a core, that one. Both back where they were after."""
    # The pin's patience (5 ms without a frame gives the cores back) is test_burst_pin's: on a
    # loaded machine a child kept off the CPU that long between two calls was unpinned here.
    monkeypatch.setattr(burst, "BURST_PATIENCE_MS", 5_000)
    monkeypatch.setattr(burst, "_PATIENCE_NS", 5_000 * 1_000_000)
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "looper", ["livechat.read", "persistence"],
                            ["livechat.room_started"], LOOP_SRC))
    install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                            ["livechat.room_started"], SLEEPER_SRC))
    everywhere = os.sched_getaffinity(0)  # before the host places its threads
    with ExitStack() as held:
        if host_core and 2 <= len(everywhere) < SPIN_MIN_CPUS:  # placed, whatever hosts
            held.enter_context(core_claimed(everywhere))       # other workers run
        _pinned_until_it_ends(home, everywhere, bursts=bursts, calls=calls, alone=alone,
                              host_core=host_core)


def _pinned_until_it_ends(home: Home, everywhere: set[int], *, bursts: bool, calls: int,
                          alone: bool, host_core: bool) -> None:
    with Host(home, config=HostConfig(pin_bursts=bursts, host_core=host_core)) as h:
        runner = next(r for r in h.runners.values() if r.app_id == "looper")
        other = next(r for r in h.runners.values() if r.app_id == "sleeper")
        seen: list[tuple[set[int], set[int]]] = []
        spins: list[bool] = []
        real = h.gate.handle

        def watched(session: Any, action: str, args: dict[str, Any]) -> Any:
            # On the runner's thread, as the call is answered: where it and the child may run.
            assert runner.child is not None
            seen.append((os.sched_getaffinity(0), os.sched_getaffinity(runner.child.app_pid())))
            return real(session, action, args)

        h.gate.handle = watched  # type: ignore[method-assign]
        assert other.submit("livechat.room_started", {"s": 0}, 10.0).result(30) == "ok"
        assert runner.submit("livechat.room_started", {"n": 1}, 10.0).result(30) == "ok"
        seen.clear()
        assert runner.child is not None
        sent = runner.child._send_reply

        def sending(reply: Any) -> None:
            spins.append(reply.spin)
            sent(reply)

        runner.child._send_reply = sending  # type: ignore[method-assign]
        busy = None if alone else other.submit("livechat.room_started", {"s": 3}, 10.0)
        if busy is not None:
            time.sleep(0.5)  # the sleeper's event is running
        assert runner.submit("livechat.room_started", {"n": calls}, 10.0).result(30) == "ok"
        assert len(seen) == calls
        placed = h.affinity.host_core
        assert (placed is not None) == (host_core and 2 <= len(everywhere) < SPIN_MIN_CPUS)
        threads = everywhere if placed is None else {placed}
        unpinned = (threads, everywhere)
        cores = h.affinity.cores
        if bursts and calls >= BURST_CALLS and cores:
            core = h.affinity.core_of(runner) if placed is None else placed
            assert core is not None
            child_core = cores[(cores.index(core) + 1) % len(cores)] if alone else core
            assert seen[:BURST_CALLS - 1] == [unpinned] * (BURST_CALLS - 1)
            assert seen[BURST_CALLS - 1:] == [({core}, {child_core})] * (calls - BURST_CALLS + 1)
            assert spins == [False] * BURST_CALLS + [alone] * (calls - BURST_CALLS)
        else:  # a short handler, bursts off, or a machine where hand-offs spin: never pinned
            assert seen == [unpinned] * calls
            assert not any(spins)
        # The job is over: both back where they were.
        assert os.sched_getaffinity(runner._thread.native_id or 0) == threads
        assert os.sched_getaffinity(runner.child.app_pid()) == everywhere
        if busy is not None:
            assert busy.result(30) == "ok"


def _threads_on(pid: int, cpus: set[int]) -> bool:
    """Every thread of `pid` on `cpus` (read once: a process may start or end a thread between
    two reads, as a REST front does while it starts)."""
    return all(on == cpus for on in _threads_cpus(pid))


def _threads_cpus(pid: int) -> list[set[int]]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.append(os.sched_getaffinity(int(tid)))
        except ProcessLookupError:
            continue
    return out


@pytest.mark.parametrize(("host_core", "zygote"), [(True, True), (True, False), (False, True)])
def test_the_hosts_threads_share_one_core_and_what_it_starts_every_core(
        tmp_path: Path, host_core: bool, zygote: bool) -> None:
    """`HostConfig.host_core`: every thread of the host's process on one core while it serves
    (a runner's thread that starts a child too), its app children (forked by the zygote or
    spawned from that thread) and its REST front on every core; all back after the stop."""
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "placed", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    everywhere = os.sched_getaffinity(0)
    sleeps = 2 <= len(everywhere) < SPIN_MIN_CPUS  # where the host places its threads
    with ExitStack() as held:
        if host_core and sleeps:  # its host placed, whatever hosts other workers run
            held.enter_context(core_claimed(everywhere))
        _placed_and_spread(home, everywhere, host_core=host_core, zygote=zygote, sleeps=sleeps)
    assert _threads_on(os.getpid(), everywhere)


def _placed_and_spread(home: Home, everywhere: set[int], *, host_core: bool, zygote: bool,
                       sleeps: bool) -> None:
    with Host(home, config=HostConfig(host_core=host_core, use_zygote=zygote)) as h:
        runner = next(iter(h.runners.values()))
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        first = runner.child
        assert first is not None
        # The first child may have started before the host placed its threads: a restart
        # is started by the runner's thread, on the host's core by then.
        first.kill("the test restarts it", code="test")
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        child = runner.child
        assert child is not None and child is not first
        placed = h.affinity.host_core
        assert (placed is not None) == (host_core and sleeps)
        threads = everywhere if placed is None else {placed}
        assert _threads_on(os.getpid(), threads)
        assert os.sched_getaffinity(child.pid) == everywhere
        assert os.sched_getaffinity(child.app_pid()) == everywhere
        if zygote:  # what it forks ahead of need primes itself off the host's core
            assert h.spawner is not None and h.spawner.zygote is not None
            zygote_cpus = os.sched_getaffinity(h.spawner.zygote.pid)
            assert zygote_cpus == (everywhere if placed is None else everywhere - {placed})
        sock = tcp_listener("127.0.0.1", 0)
        front = RestFront(home, sock, server=h.server, spread=h.affinity.spread).start()
        try:
            assert front.pid is not None
            assert _threads_on(front.pid, everywhere)
        finally:
            front.stop()
            sock.close()


def test_place_host_moves_every_thread_and_release_brings_them_back() -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        assert Affinity(host_core=True).host_cores == ()
        return
    pair = set(cores[:2])
    assert Affinity(host_core=True, cpus=pair).host_cores == tuple(cores[:2])
    assert Affinity(host_core=True, always=True, cpus=pair).host_cores == ()  # pairs pinned
    assert Affinity(host_core=True, cpus=set(range(SPIN_MIN_CPUS))).host_cores == ()
    assert Affinity(host_core=False, cpus=pair).host_cores == ()
    aff = Affinity(host_core=True, cpus=pair)
    assert aff.host_core is None  # claimed when placed
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # a thread started before the placing
    other.start()
    before = os.sched_getaffinity(0)
    held = ExitStack()
    try:
        # Placed whatever hosts other workers run (they may hold both cores for a moment).
        held.enter_context(core_claimed(pair))
        aff.place_host()
        placed = aff.host_core
        assert placed in pair
        assert os.sched_getaffinity(other.native_id or 0) == {placed}
        assert os.sched_getaffinity(0) == {placed}
        sleeper = subprocess.Popen(["sleep", "30"])  # inherits the host's core ...
        try:
            assert os.sched_getaffinity(sleeper.pid) == {placed}
            aff.spread(sleeper.pid)  # ... until the host spreads it
            assert os.sched_getaffinity(sleeper.pid) == pair
        finally:
            sleeper.kill()
            sleeper.wait()
        sleeper = subprocess.Popen(["sleep", "30"])
        try:
            aff.aside(sleeper.pid)
            assert os.sched_getaffinity(sleeper.pid) == pair - {placed}
        finally:
            sleeper.kill()
            sleeper.wait()
        aff.release_host()
        assert os.sched_getaffinity(other.native_id or 0) == pair
        assert aff.host_core is None
    finally:
        held.close()
        stop.set()
        other.join()
        os.sched_setaffinity(0, before)
