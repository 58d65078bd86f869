"""An uninstall deletes the app's log, as `app uninstall` says it does (DESIGN rule 13).

Each install's log (`HOME/logs/<install id>.log`, rotated to `.log.1`) is capped at twice
`MAX_LOG_BYTES`, but only per install: the logs of uninstalled installs stayed on disk for
good, so install/uninstall churn grew the logs folder by up to 2 MiB a cycle, while
`app uninstall` listed "its log" among what it deletes."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from apphelp import install, write_app, write_policy
from churnhelp import CHURN_POLICY

from host.apps.operations import install_package, uninstall_app
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        print("the app's own line")
        return "ok"
'''
CYCLES = 5


def test_uninstall_deletes_the_installs_log_and_its_rotation(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    folder = write_app(tmp_path / "apps", "churn", ["livechat.read"],
                       ["livechat.room_started"], SRC)
    rec = install(home, folder)
    with Host(home, config=HostConfig(watch=False)) as h:
        for _ in range(CYCLES):
            runner = h.runners[rec.install_id]
            assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
            child = runner.child
            assert child is not None
            os.kill(child.pid, signal.SIGKILL)  # a host note in its log too
            # Once the host has seen the exit, the next event runs in a new child (a child dead
            # between events costs no event); before, it is written to the dead one and fails.
            deadline = time.monotonic() + 10
            while not child.has_exited() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
            assert runner.child is not child
            log = home.logs_dir / f"{rec.install_id}.log"
            assert "the app's own line" in log.read_text()
            log.with_suffix(".log.1").write_text("rotated\n")  # as a full log is
            uninstall_app(home, h.installs, rec, users="keep", agents="keep")
            h.sync_installs()  # the host stops the app (and notes nothing more in its log)
            pkg = read_package(folder)
            rec = install_package(home, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                                  frozenset(pkg.manifest.asked), policy_revision=None,
                                  transfer=True)
            h.sync_installs()
    left = sorted(p.name for p in home.logs_dir.iterdir())
    # Before: two files per uninstalled install (10 here), kept for good.
    assert left == [], f"logs of uninstalled installs kept: {left}"


SLOW_SRC = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(event.get("sleep", 0))
        return "ok"
'''


def test_what_a_running_host_notes_as_it_ends_the_app_is_deleted_too(tmp_path: Path) -> None:
    """The host ends an uninstalled app after the uninstall (its queued events dropped and
    noted in its log): that note does not bring the log back."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], SLOW_SRC))
    with Host(home, config=HostConfig(watch=False)) as h:
        runner = h.runners[rec.install_id]
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        busy = runner.submit("livechat.room_started", {"sleep": 2}, 5.0)
        queued = runner.submit("livechat.room_started", {}, 5.0)
        uninstall_app(home, h.installs, rec, users="keep", agents="keep")
        h.sync_installs()
        assert queued.exception(20) is not None  # dropped: the app was uninstalled
        busy.exception(20)
    left = sorted(p.name for p in home.logs_dir.iterdir())
    # Before (with the uninstall's own deletion alone): the drop's note made the log again.
    assert left == [], f"the uninstalled install's log came back: {left}"
