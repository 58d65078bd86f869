"""Restarted runners are freed: one held runner never keeps every later one alive (DESIGN 13).

A restart by the host (an epoch bump, a revoked or renewed token, new settings, an update)
hands the app's queued events to a new runner, and the old one forwards what still reaches it
(`AppRunner.succeeded_by`). Each old runner used to hold its successor: a chain from the app's
first runner to its newest, so whatever kept the first (the gc freeze a serving host does at
start, `host.supervise.gctune`, keeps it for good) kept every runner the app ever had, with
its last child, session and install record: ~25 KB of host memory per restart, for the life of
the process."""
from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

from apphelp import install, write_app, write_policy
from churnhelp import CHURN_POLICY, OK_APP

from host.home import Home
from host.runtime import Host, HostConfig

RESTARTS = 30


def test_a_held_first_runner_does_not_keep_every_later_one(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], OK_APP))
    # No gc freeze here (it happens once per process, in whichever test starts a host first):
    # the test holds the first runner itself, as the freeze would.
    with Host(home, config=HostConfig(watch=False, tune_gc=False)) as h:
        first = h.runners[rec.install_id]
        made = []
        for _ in range(RESTARTS):
            runner = h.runners[rec.install_id]
            made.append(weakref.ref(runner))
            assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
            h.installs.bump_epoch()  # every token revoked: the app starts again
            h.sync_installs()
        del runner
        now = h.runners[rec.install_id]
        assert now is not first
        # What still reaches the first runner goes on to the one the app runs in now.
        assert first.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        assert now.events_done == 1
        # A host thread may still hold the runner it last touched (a stop finishing, a local
        # of its last round) for a moment: a few, never a number that grows with restarts.
        deadline = time.monotonic() + 5
        while True:
            gc.collect()
            alive = [i for i, ref in enumerate(made) if ref() not in (None, first)]
            if len(alive) <= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    # Before: all 29 later runners stayed alive, each held by the one before it.
    assert len(alive) <= 3, f"{len(alive)} of {RESTARTS - 1} replaced runners alive: {alive}"
