"""Bounded event queues (issue 26): a full queue drops by the event's overflow policy, and every
drop is counted, failed to its waiter, written to the app's log and audited as a summary — never
silent. The serving host publishes each app's state so `stockade app list` shows it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from typer.testing import CliRunner

from host.cli.main import root as cli
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.supervise import runnerqueue, supervisor
from host.supervise.supervisor import EventDropped

QUEUE = 3  # a small cap so the test overflows it with a handful of events

SRC = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        if event.get("n") == 0:
            time.sleep(0.6)
        return event.get("n")

    def on_livechat_room_closed(self, ctx, event):
        if event.get("n") == 0:
            time.sleep(0.6)
        return event.get("n")
'''

POLICY = '''
schema = 1
name = "spine"
[[rule]]
id = "spine-read"
effect = "permit"
apps = ["slow"]
actions = ["livechat.read"]
'''


@pytest.fixture()
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", POLICY)
    install(home, write_app(tmp_path / "apps", "slow", ["livechat.read"],
                            ["livechat.room_started", "livechat.room_closed"], SRC))
    return home


@pytest.fixture()
def host(home: Home, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runnerqueue, "MAX_QUEUE", QUEUE)
    h = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    yield h
    h.stop()


def _burst(host: Host, event: str, n: int) -> list[object]:
    """Event 0 keeps the app busy; 1..n-1 arrive while it is. Returns each event's outcome."""
    deliveries = [host.dispatch(event, {"n": i}) for i in range(n)]
    out: list[object] = []
    for d in deliveries:
        d.wait(timeout=20)
        failures = d.failures()
        out.append(failures["slow"] if failures else d.results()[0])
    return out


def _supervisor_records(home: Home) -> list[dict[str, object]]:
    log = open_readonly(home.host_db, SystemClock())
    try:
        return [e.body for e in log.tail(1000) if e.body.get("kind") == "supervisor"]
    finally:
        log.close()


def test_refuse_policy_keeps_the_queued_events_and_drops_the_new_ones(host: Host,
                                                                      home: Home) -> None:
    assert supervisor.overflow_policy("livechat.room_closed") == "refuse"
    outcomes = _burst(host, "livechat.room_closed", 9)
    ran = [o for o in outcomes if not isinstance(o, BaseException)]
    dropped = [o for o in outcomes if isinstance(o, EventDropped)]
    # event 0 ran, the first QUEUE arrivals queued behind it, the rest were refused
    assert ran == [0, 1, 2, 3]
    assert len(dropped) == 5
    runner = next(iter(host.runners.values()))
    assert runner.dropped == {"queue_full": 5}
    host.publish_status()
    records = [r for r in _supervisor_records(home) if r.get("event") == "events_dropped"]
    # audited as summaries (the first drop at once, the rest in the next one), not one per drop
    assert 1 <= len(records) <= 2
    assert sum(int(str(r["detail"]).split()[0]) for r in records) == 5
    log = (home.logs_dir / f"{runner.install_id}.log").read_text()
    assert "dropped: livechat.room_closed:queue_full=" in log


def test_drop_oldest_policy_keeps_the_newest_events(host: Host) -> None:
    assert supervisor.overflow_policy("livechat.room_started") == "drop_oldest"
    outcomes = _burst(host, "livechat.room_started", 9)
    ran = [o for o in outcomes if not isinstance(o, BaseException)]
    assert ran == [0, 6, 7, 8]
    assert all(isinstance(o, EventDropped) for o in outcomes[1:6])


def test_app_list_shows_a_running_apps_state_and_drops(host: Host, home: Home) -> None:
    _burst(host, "livechat.room_closed", 6)
    host.publish_status()
    res = CliRunner().invoke(cli, ["--home", str(home.root), "app", "list", "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["running"]["state"] == "running"
    assert row["running"]["dropped"] == 2
    human = CliRunner().invoke(cli, ["--home", str(home.root), "app", "list"])
    assert "dropped 2" in human.output


def test_a_stopped_hosts_status_is_not_shown_as_running(home: Home) -> None:
    h = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    h.dispatch("livechat.room_started", {"n": 1}).wait(timeout=10)
    h.publish_status()
    h.stop()
    res = CliRunner().invoke(cli, ["--home", str(home.root), "app", "list", "--json"])
    assert json.loads(res.stdout)[0]["running"] is None


def test_doctor_shows_each_serving_apps_event_drops(host: Host, home: Home) -> None:
    from host import doctor

    _burst(host, "livechat.room_closed", 6)
    host.publish_status()
    drops = {c.name: c.detail for c in doctor.state_checks(home)
             if c.name.startswith("event drops")}
    assert drops.keys() == {"event drops: slow"}
    assert drops["event drops: slow"].startswith("2 dropped (queue full 2)"), drops


def test_events_lost_to_a_stop_are_counted_and_audited_never_silent(home: Home) -> None:
    """A runner stopped with events still queued (the host stopping, an update, a settings
    change, a revoked token) is done with them: they are drops like any other (issue 26).
    Before, the kill of the running event's child looked like a crash, the runner started a
    new child and delivered the queue to it after the stop (the futures here got results);
    without that, the first was failed with a bare "app stopped" and the rest never answered."""
    h = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    runner = next(iter(h.runners.values()))
    try:
        runner.ensure_started()
        futures = [runner.submit("livechat.room_started", {"n": i}, 5.0) for i in range(4)]
        time.sleep(0.3)  # event 0 is running (it sleeps 0.6 s), 1..3 wait behind it
        runner.stop("test stop")
    finally:
        h.stop()
    lost = [f.exception(5) for f in futures[1:]]
    assert all(isinstance(e, EventDropped) for e in lost), lost
    assert runner.dropped == {"stopped": 3}
    records = [r for r in _supervisor_records(home) if r.get("event") == "events_dropped"]
    assert sum(int(str(r["detail"]).split()[0]) for r in records) == 3


TAGGED = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(0.4)
        print("handled " + str(event["n"]) + " with " + ctx.settings["tag"])
        return event["n"]
'''
TAG_SETTING = '''
[[setting]]
key = "tag"
type = "string"
label = "Tag"
default = "old"
'''


def test_a_restarted_apps_queued_events_go_to_its_new_runner(tmp_path: Path) -> None:
    """New settings (or an update, or a new token) restart an app in a new runner; the events
    queued for the old one are handed to it, not lost (before: each dropped as `stopped`)."""
    from host.apps.installs import InstallStore
    from host.supervise.child import ChildDied

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "slow", ["livechat.read"],
                                  ["livechat.room_started"], TAGGED, TAG_SETTING))
    with Host(home, config=HostConfig(event_deadline_s=5.0)) as h:
        old = next(iter(h.runners.values()))
        old.ensure_started()
        # The install hook first (the watcher waits for a hook it hands over, and would not
        # see the settings change behind one queued after these events).
        deadline = time.monotonic() + 10
        while h.installs.pending_hooks(rec.install_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.wait_idle(10)
        futures = [old.submit("livechat.room_started", {"n": i}, 5.0) for i in range(8)]
        time.sleep(0.2)  # event 0 is running, 1..7 wait (0.4 s each)
        with InstallStore(home.host_db) as store:
            store.set_settings(rec.install_id, {"tag": "new"}, ["tag"])
        outcomes: list[object] = []
        for f in futures:
            try:
                outcomes.append(f.result(30))
            except Exception as exc:  # the event in flight at the restart ends with its child
                outcomes.append(exc)
        deadline = time.monotonic() + 10
        while h.runners.get(rec.install_id) in (None, old) and time.monotonic() < deadline:
            time.sleep(0.05)
        new = h.runners[rec.install_id]
        assert new is not old
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) <= 1 and all(isinstance(o, ChildDied) for o in failed), outcomes
    assert old.dropped == {} and new.dropped == {}
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert all(f"handled {n} with new" in log for n in (5, 6, 7)), log


def test_a_hook_queued_behind_one_apps_events_holds_up_no_other_change(tmp_path: Path) -> None:
    """The watcher waited for each lifecycle hook it handed over: one queued behind an app's
    backlog (here the `settings_changed` hook of an app restarted with 8 slow events) held every
    later install change's event side, here another app's disable, until the backlog was
    done (before: ~4 s). Hooks are handed over and marked done when they finish."""
    from host.apps.installs import InstallStore

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "slow", ["livechat.read"],
                                  ["livechat.room_started"], TAGGED, TAG_SETTING))
    other = install(home, write_app(tmp_path / "apps", "other", [], [],
                                    "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    with Host(home, config=HostConfig(event_deadline_s=5.0)) as h:
        slow = h.runners[rec.install_id]
        slow.ensure_started()
        deadline = time.monotonic() + 10
        while h.installs.pending_hooks() and time.monotonic() < deadline:
            time.sleep(0.05)
        futures = [slow.submit("livechat.room_started", {"n": i}, 5.0) for i in range(8)]
        with InstallStore(home.host_db) as store:
            store.set_settings(rec.install_id, {"tag": "new"}, ["tag"])
        time.sleep(0.6)  # the watcher restarted `slow` and handed its hook over
        with InstallStore(home.host_db) as store:
            store.set_enabled(other.install_id, False, "operator")
        t0 = time.monotonic()
        while other.install_id in h.runners and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        took = time.monotonic() - t0
        for f in futures:
            f.exception(30)
        deadline = time.monotonic() + 10
        while h.installs.pending_hooks(rec.install_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.installs.pending_hooks(rec.install_id) == []  # the hook ran, then was marked
    assert took < 1.5, f"the disable waited {took:.1f} s behind another app's hook"
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert "handled 7 with new" in log
