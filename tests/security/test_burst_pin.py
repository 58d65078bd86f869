"""An app cannot hold the host's own core by making a burst of calls and then computing.

A job's pair is pinned after `BURST_CALLS` bridge calls (`host.supervise.burst`); with another
event running, its child goes on the runner's core, which is the host's own once the host's
threads are placed there. The pin lasted until the job ended, so an app that made 16 calls
(refused ones count as well) and then looped until its deadline kept its child on the core
every host thread shares: the host's throughput halved for the rest of the event, every event
(a reviewer's measurement: 780 -> 386 chunks of host work a second). Now the runner waits at
most `BURST_PATIENCE_MS` for the child's next frame before giving it every core back.

A real host on two cores (the only shape where pairs are pinned beside the host's threads):
a sleeper app's event runs, so the attacker's burst is not alone.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app
from corehelp import core_claimed

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.affinity import BURST_CALLS

ATTACKER = f'''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        for i in range({BURST_CALLS}):
            ctx.store.put("k", i)
        end = time.monotonic() + event["compute"]
        spins = 0
        while time.monotonic() < end:  # the host's core, if it is still pinned there
            spins += 1
        return "done"
'''
SLEEPER = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(event["s"])
        return "ok"
'''


@pytest.fixture
def two_cores() -> Iterator[set[int]]:
    """This process on two cores for the test (pairs are pinned only there)."""
    everywhere = os.sched_getaffinity(0)
    assert len(everywhere) >= 2, "pinning needs two cores; this machine has one"
    two = set(sorted(everywhere)[:2])
    os.sched_setaffinity(0, two)
    try:
        with core_claimed(two):  # the test's host is placed, whatever other workers run
            yield two
    finally:
        os.sched_setaffinity(0, everywhere)


def test_a_burst_that_stops_calling_leaves_the_hosts_core(
        tmp_path: Path, two_cores: set[int]) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "attacker", ["livechat.read", "persistence"],
                            ["livechat.room_started"], ATTACKER))
    install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                            ["livechat.room_started"], SLEEPER))
    with Host(home, config=HostConfig(watch=False)) as host:
        assert host.affinity.host_core is not None  # the host's threads share one core
        attacker = next(r for r in host.runners.values() if r.app_id == "attacker")
        sleeper = next(r for r in host.runners.values() if r.app_id == "sleeper")
        for r in (attacker, sleeper):
            r.ensure_started()
        busy = sleeper.submit("livechat.room_started", {"s": 2.0}, 10.0)
        time.sleep(0.3)  # the sleeper's event runs: the attacker's burst is not alone
        attack = attacker.submit("livechat.room_started", {"compute": 1.2}, 10.0)
        time.sleep(0.6)  # its 16 calls made (a few ms), computing since
        assert attacker.child is not None and not attack.done()
        seen = os.sched_getaffinity(attacker.child.app_pid())
        # before: {the host's core}, for the whole of its compute
        assert seen == two_cores, (seen, host.affinity.host_core)
        assert attack.result(30) == "done"
        assert busy.result(30) == "ok"
