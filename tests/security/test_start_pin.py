"""An app cannot hold the host's own core by computing while its child starts.

A child being started is put on the host's core until its start is done (`Affinity.starting`:
the handshake's and the load's hand-offs are then direct switches). The load runs the app's
module code, so an app whose module computes at import (no escape needed: a loop at the top of
`main.py`) ran on the core every host thread shares for as long as its load took, up to
`LOAD_TIMEOUT_S` (10 s) each start, and a load that ends in time is no death to count. Now a
load keeps the host's core for at most `BURST_PATIENCE_MS` in all, then the child gets every
core (`burst.patient_load`; frames it sends meanwhile renew nothing: `test_pin_keepalive.py`).

A real host on two cores (the only shape where the host's threads share one core).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from apphelp import install, write_app
from test_burst_pin import two_cores

from host.home import Home
from host.runtime import Host, HostConfig

__all__ = ["two_cores"]  # the fixture, used by name

SLOW_IMPORT = '''
import time
from stockade import App

end = time.monotonic() + 1.0
spins = 0
while time.monotonic() < end:  # at import: the host's core, if the start keeps it there
    spins += 1


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return spins > 0
'''


def test_a_start_whose_app_computes_at_import_leaves_the_hosts_core(
        tmp_path: Path, two_cores: set[int]) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "slow", ["livechat.read"],
                            ["livechat.room_started"], SLOW_IMPORT))
    with Host(home, config=HostConfig(watch=False)) as host:
        assert host.affinity.host_core is not None  # the host's threads share one core
        started: list[int] = []
        real = host.affinity.starting

        def starting(pid: int) -> None:
            started.append(pid)
            real(pid)

        host.affinity.starting = starting  # type: ignore[method-assign]
        (runner,) = host.runners.values()
        runner.ensure_started()  # the host's own start (its threads not yet on one core)
        assert runner.child is not None
        runner.child.kill("a new token", code="revoked")  # restarted at its next event
        outcome = runner.submit("livechat.room_started", {}, 10.0)
        end = time.monotonic() + 5
        while not started:
            assert time.monotonic() < end, "no child was started"
            time.sleep(0.01)
        time.sleep(0.4)  # its handshake done, its module computing since
        assert not outcome.done()
        seen = os.sched_getaffinity(started[0])
        # before: {the host's core}, for the whole of its import
        assert seen == two_cores, (seen, host.affinity.host_core)
        assert outcome.result(30) is True
