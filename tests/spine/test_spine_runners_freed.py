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
import weakref
from pathlib import Path

from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''
POLICY = '''
schema = 1
name = "spine"
[[rule]]
id = "spine-read"
effect = "permit"
apps = ["churn"]
actions = ["livechat.read"]
'''
RESTARTS = 20


def test_a_held_first_runner_does_not_keep_every_later_one(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], SRC))
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
        gc.collect()
        alive = [r for r in (ref() for ref in made) if r is not None and r is not first]
        # Before: all 19 later runners were alive, each held by the one before it.
        assert len(alive) <= 1, f"{len(alive)} of {RESTARTS - 1} replaced runners still alive"
