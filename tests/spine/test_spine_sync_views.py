"""What a sync (`Host.sync_installs`) reads of the install store is one view, applied whole.

A lifecycle hook is handed over, or set aside as done, only by a sync whose view of the
installs already holds the change that queued it.

A sync read the install records, matched the running set to them, then read the pending hooks.
An `app disable` (another process) committed between the two reads left the runner running (the
records said enabled) while its `disable` hook, recorded with the new generation, was pending:
the generations differed, so the hook was marked done unrun, and the next sync ended the app
without telling it (seen in CI: one run in about forty under load). The same window dropped an
`enable` hook (no runner yet). The hooks are now read before the records.

Read first, a hook an earlier sync handed over may have run to its end before this sync hands
its list out: one still pending and not out is handed over, never one run twice.

And one sync at a time reads and matches: the watcher's sync, which read the records before an
enable, matched the running set after a newer sync had started the app, and stopped it again.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from hookfaults import hook_mark_locked_once

from host.apps.installs import InstallRecord, InstallStore
from host.home import Home
from host.runtime import Host, HostConfig

POLICY = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["told"]
actions = ["livechat.read"]
'''
SRC = '''
import time
from stockade import App

class TestApp(App):
    def on_disable(self, ctx, event):
        print("told: " + event["hook"])

    def on_enable(self, ctx, event):
        time.sleep(0.5)
        print("told: " + event["hook"])
'''


def _told(tmp_path: Path) -> tuple[Home, InstallRecord]:
    """A home with the one app, `told`, installed (it prints the hooks it hears)."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", POLICY)
    return home, install(home, write_app(tmp_path / "apps", "told", ["livechat.read"],
                                         ["livechat.room_started"], SRC))


def test_a_disable_committed_between_a_syncs_two_reads_still_reaches_the_app(
        tmp_path: Path) -> None:
    home, rec = _told(tmp_path)
    with Host(home, config=HostConfig(watch=False)) as h:
        runner = next(iter(h.runners.values()))
        runner.ensure_started()
        listed = h.installs.list

        def list_then_disable() -> list:  # type: ignore[type-arg]
            records = listed()
            with InstallStore(home.host_db) as other:  # the operator, in another process
                other.set_enabled(rec.install_id, False, "operator")
            return records

        h.installs.list = list_then_disable  # type: ignore[method-assign]
        h.sync_installs()  # saw the app enabled: it keeps running for now
        h.installs.list = listed  # type: ignore[method-assign]
        assert rec.install_id in h.runners
        h.sync_installs()  # sees it disabled: its hook, then its stop
        assert h.runners == {} and runner.state == "stopped"
    assert "told: disable" in (home.logs_dir / f"{rec.install_id}.log").read_text()


def test_a_sync_reading_an_older_view_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    home, rec = _told(tmp_path)
    with Host(home, config=HostConfig(watch=False)) as h:
        h.installs.set_enabled(rec.install_id, False, "operator")
        h.sync_installs()
        assert h.runners == {}
        listed, read, newer_done = h.installs.list, threading.Event(), threading.Event()

        def list_and_linger() -> list:  # type: ignore[type-arg]
            records = listed()  # the app is disabled in this view
            if threading.current_thread().name == "older":
                read.set()
                newer_done.wait(3)  # the newer sync runs meanwhile, if it can
            return records

        def older() -> None:
            h.sync_installs(wait_hooks=False)

        h.installs.list = list_and_linger  # type: ignore[method-assign]
        first = threading.Thread(target=older, name="older")
        first.start()
        assert read.wait(10)
        h.installs.set_enabled(rec.install_id, True)

        def newer() -> None:
            h.sync_installs(wait_hooks=False)
            newer_done.set()

        second = threading.Thread(target=newer)
        second.start()
        first.join(20)
        second.join(20)
        assert [r.app_id for r in h.runners.values()] == ["told"]


def test_a_hook_that_ran_while_a_sync_read_is_not_handed_over_again(tmp_path: Path) -> None:
    home, rec = _told(tmp_path)
    with Host(home, config=HostConfig(watch=False)) as h, InstallStore(home.host_db) as other:
        next(iter(h.runners.values())).ensure_started()
        h.installs.set_enabled(rec.install_id, True)  # an `enable` hook for the running app
        h.sync_installs(wait_hooks=False)  # handed over: its handler takes 0.5 s
        listed = h.installs.list

        def list_once_it_ran() -> list:  # type: ignore[type-arg]
            deadline = time.monotonic() + 10
            while other.pending_hooks(rec.install_id) and time.monotonic() < deadline:
                time.sleep(0.02)
            return listed()

        h.installs.list = list_once_it_ran  # type: ignore[method-assign]
        h.sync_installs(wait_hooks=False)  # read the hook while it ran; it is done now
        h.installs.list = listed  # type: ignore[method-assign]
        assert h.wait_idle(10)
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert log.count("told: enable") == 1, log


def test_a_hook_the_watcher_handed_over_is_not_run_again_by_a_waiting_sync(
        tmp_path: Path) -> None:
    """A sync that waits for its hooks (a start's, an embedder's) while the watcher's handed-over
    hook still runs: it leaves that hook to the watcher's hand-over, as the watcher's own next
    sync does."""
    home, rec = _told(tmp_path)
    with Host(home, config=HostConfig(watch=False)) as h:
        next(iter(h.runners.values())).ensure_started()
        h.installs.set_enabled(rec.install_id, True)  # an `enable` hook for the running app
        h.sync_installs(wait_hooks=False)  # handed over: its handler takes 0.5 s
        h.sync_installs(wait_hooks=True)  # reads it still pending, out
        assert h.wait_idle(10)
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert log.count("told: enable") == 1, log


def test_a_hook_whose_done_mark_failed_is_delivered_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hooks are delivered at least once (docs/EVENTS.md): the app ran its hook but the host
    could not delete its row (a store error here; a host that dies at that moment is the same
    case at its next start), so the next sync hands it over again. Said "exactly once" before
    (`host.apps.installs`), which no host can promise with the app's work outside its store."""
    home, rec = _told(tmp_path)
    with Host(home, config=HostConfig(watch=False)) as h:
        next(iter(h.runners.values())).ensure_started()
        failed = hook_mark_locked_once(h.installs, monkeypatch)
        h.installs.set_enabled(rec.install_id, True)  # an `enable` hook for the running app
        h.sync_installs(wait_hooks=False)
        assert h.wait_idle(10) and failed
        assert h.installs.pending_hooks(rec.install_id)  # ran, but not marked done
        h.sync_installs(wait_hooks=False)
        assert h.wait_idle(10)
        assert not h.installs.pending_hooks(rec.install_id)
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert log.count("told: enable") == 2, log
