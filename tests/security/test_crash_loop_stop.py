"""An app that keeps killing its own child is stopped for crash-looping, and stays stopped (a host
restart too) until the operator's `stockade app enable`; an app whose deaths are rare never is.

Before: a dead child was restarted at the next event after a backoff that any successful event
reset to its first value (50 ms), so an app that died on every other event was restarted for as
long as events came: each death a fresh confined child (fork, confinement, load) and an audit
record, without bound (`host.supervise.restarts`).

Attacked with a real host and real confined children whose app escaped the language wall
(`escapehost`) and ends its own process (`os._exit`) on every other event it handles.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from audithelp import audit_bodies
from escapehost import PRELUDE, escape_apps
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.cli.main import root
from host.console.app import _app_row
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise import restarts
from host.supervise.child import ChildDied
from host.supervise.restarts import CRASH_LIMIT, CRASH_WINDOW_S, Restarts, counts_against_app
from host.supervise.supervisor import AppRunner, EventDropped

# Dies on every other event its child handles: the first event in each new child succeeds (and
# so resets the backoff), the second ends the process.
LOOPER = PRELUDE + '''

class TestApp(App):
    handled = 0

    def on_livechat_room_started(self, ctx, event):
        TestApp.handled += 1
        if TestApp.handled % 2 == 0:
            sys.modules["os"]._exit(3)
        return 42
'''
EVENT = "livechat.room_started"


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    escape_apps(monkeypatch, tmp_path)
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "looper", ["livechat.read"], [EVENT], LOOPER))
    return home


def _host(home: Home) -> Host:
    return Host(home, config=HostConfig(watch=False, use_zygote=False))


def _outcome(runner: AppRunner) -> object:
    try:
        return runner.submit(EVENT, {}, 10.0).result(30)
    except (ChildDied, EventDropped) as exc:
        return type(exc).__name__


def _cli(home: Home, *args: str) -> Any:
    r = CliRunner().invoke(root, ["--home", str(home.root), *args])
    assert r.exit_code == 0, r.output
    return r


def _record(home: Home) -> Any:
    with InstallStore(home.host_store) as store:
        rec = store.by_app("looper")
    assert rec is not None
    return rec


def test_an_app_that_dies_on_every_other_event_is_stopped_at_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path, monkeypatch)
    with _host(home) as host:
        (runner,) = host.runners.values()
        outcomes = [_outcome(runner) for _ in range(2 * CRASH_LIMIT + 4)]
        # before: the loop went on, [42, "ChildDied"] for every pair, restarts 7 and counting
        assert outcomes == [42, "ChildDied"] * CRASH_LIMIT + ["EventDropped"] * 4, outcomes
        assert runner.restarts == CRASH_LIMIT and runner.child is None
        assert runner.state == "crashed" and runner.dropped == {"crashed": 4}
        status = runner.status()
        host.publish_status()
        listed = json.loads(_cli(home, "app", "list", "--json").stdout)
        human = " ".join(_cli(home, "app", "list").output.split())
        info = " ".join(_cli(home, "app", "info", "looper").output.split())
    why = status["crash_stop"]
    assert why.startswith(f"stopped for crash-looping: {CRASH_LIMIT} deaths in ")
    assert "child exited with code 3" in why and "stockade app enable" in why
    stops = [b for b in audit_bodies(home) if b.get("event") == "crash_looping"]
    assert [(b["kind"], b["detail"]) for b in stops] == [("supervisor", why)], stops
    assert len([b for b in audit_bodies(home) if b.get("event") == "child_died"]) == CRASH_LIMIT
    # Kept in the install record, and shown: list (--json and not), info, the console's row.
    assert _record(home).crash_stop == why
    assert listed[0]["crash_stop"] == why and listed[0]["running"]["state"] == "crashed"
    assert "stopped for crash-looping" in human and "crash stop:" in human, human
    assert "enabled, but stopped for crash-looping" in info, info
    row = _app_row(_record(home), None, 0)
    assert row["state"] == "crashed" and row["why"] == why and row["crashed"]


def test_the_stop_outlives_a_host_restart_and_app_enable_clears_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path, monkeypatch)
    with _host(home) as host:
        (runner,) = host.runners.values()
        for _ in range(2 * CRASH_LIMIT):
            _outcome(runner)
        assert runner.state == "crashed"
    started: list[AppRunner] = []
    with _host(home) as host:
        real = host.start_child
        monkeypatch.setattr(host, "start_child", lambda r: (started.append(r), real(r))[1])
        (runner,) = host.runners.values()
        assert runner.state == "crashed" and runner.crash_stop == _record(home).crash_stop
        assert _outcome(runner) == "EventDropped" and started == []
        _cli(home, "app", "enable", "looper")  # the operator acts
        assert _record(home).crash_stop is None
        host.sync_installs()
        (again,) = host.runners.values()
        assert again is not runner and again.state != "crashed" and again.crash_stop is None
        assert _outcome(again) == 42 and started == [again]
    assert _record(home).crash_stop is None


def test_a_stop_another_host_recorded_stops_this_hosts_runner_at_its_next_sync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts sharing a store: one stops the app for crash-looping (the record's `crash_stop`),
    and another still running it stops it too at its next install sync. Before, the other host
    kept its child and went on handing it events until it next created the runner."""
    home = _home(tmp_path, monkeypatch)
    with _host(home) as host:
        (runner,) = host.runners.values()
        assert _outcome(runner) == 42 and runner.child is not None
        child = runner.child
        with InstallStore(home.host_store) as store:  # as the other host records its stop
            store.set_crash_stop(_record(home).install_id, "died 5 times in 300 s elsewhere")
        host.sync_installs()
        (now,) = host.runners.values()
        assert now.state == "crashed" and now.crash_stop == "died 5 times in 300 s elsewhere"
        assert child.dead  # its child stopped with it
        assert _outcome(now) == "EventDropped"


def test_an_app_whose_deaths_are_rare_is_never_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deaths spread so that no window holds the limit: restarted every time, as before."""
    home = _home(tmp_path, monkeypatch)
    now = [1000.0]
    with _host(home) as host:
        (runner,) = host.runners.values()
        runner.deaths = Restarts(now=lambda: now[0])
        deaths = CRASH_LIMIT + 3
        for _ in range(deaths):
            assert _outcome(runner) == 42
            assert _outcome(runner) == "ChildDied"
            now[0] += CRASH_WINDOW_S / (CRASH_LIMIT - 1) + 1.0  # the limit never fits a window
        assert _outcome(runner) == 42
        assert runner.restarts == deaths and runner.state != "crashed"
        assert runner.crash_stop is None and runner.dropped == {}
    assert not [b for b in audit_bodies(home) if b.get("event") == "crash_looping"]
    assert _record(home).crash_stop is None


def test_the_window_counts_only_deaths_the_app_caused() -> None:
    now = [0.0]
    deaths = Restarts(now=lambda: now[0])
    for _ in range(3 * CRASH_LIMIT):  # the host's own stops and kills: never the app's loop
        for code in ("stopped", "shutdown", "revoked", "zygote_died", "confinement",
                     "start_failed"):
            assert not counts_against_app(code)
            deaths.died(counts=counts_against_app(code))
    assert deaths.crash_loop("x") is None
    for code in ("crashed", "child_died", "timeout", "protocol", "load_failed", "idle_compute",
                 "refusals"):
        assert counts_against_app(code)
    for _ in range(CRASH_LIMIT - 1):
        deaths.died(counts=True)
        deaths.succeeded()  # an event that succeeds resets the backoff, not the window
    assert deaths.crash_loop("x") is None
    now[0] += CRASH_WINDOW_S + 1  # those age out of the window
    for _ in range(CRASH_LIMIT - 1):
        deaths.died(counts=True)
    assert deaths.crash_loop("x") is None
    deaths.died(counts=True)
    assert deaths.failures == CRASH_LIMIT  # the backoff doubles on these, reset by a success
    why = deaths.crash_loop("killed for a limit")
    assert why is not None and why.startswith(f"stopped for crash-looping: {CRASH_LIMIT} deaths")
    assert why.endswith("last: killed for a limit")
    assert restarts.BACKOFF_FIRST_S <= deaths.backoff_left() <= restarts.BACKOFF_MAX_S


def test_an_install_store_from_before_the_column_gets_it(tmp_path: Path) -> None:
    """Install schema 1 (no `crash_stop`) moves to 2 when it is next opened, installs intact."""
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "older", ["livechat.read"], [EVENT],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    c = sqlite3.connect(home.host_db)
    c.execute("ALTER TABLE install_installs DROP COLUMN crash_stop")
    c.execute("UPDATE schema_meta SET version = 1 WHERE component = 'installs'")
    c.commit()
    c.close()
    with InstallStore(home.host_store) as store:
        rec = store.by_app("older")
        assert rec is not None and rec.crash_stop is None
        store.set_crash_stop(rec.install_id, "stopped for crash-looping: test")
        assert (store.get(rec.install_id) or rec).crash_stop == "stopped for crash-looping: test"


def test_this_hosts_own_stop_met_by_a_sync_mid_record_is_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner records its crash-loop stop in the install record before it shows it (else a
    sync between the two would read the stop as cleared and start the app again). A sync that
    lands between the two read this host's own stop as one another host recorded: the runner
    was replaced and audited "stopped for crash-looping by another host", which no other host
    did. Now the runner's own stop being recorded is told apart, and the runner stays."""
    home = _home(tmp_path, monkeypatch)
    why = "stopped for crash-looping: 5 deaths in 9 s (here)"
    with _host(home) as host:
        (runner,) = host.runners.values()
        monkeypatch.setattr(runner.deaths, "crash_loop", lambda last_error: why)
        record = host.crash_stopped

        def then_a_sync(r: AppRunner, w: str) -> None:
            record(r, w)
            host.sync_installs()  # the watcher's sync, before the runner shows the stop

        monkeypatch.setattr(host, "crash_stopped", then_a_sync)
        runner._crash_check()
        stopped = [b["detail"] for b in audit_bodies(home) if b.get("event") == "stopped"]
        # before: ['app stopped for crash-looping by another host'] and a new runner
        assert stopped == [], stopped
        (now,) = host.runners.values()
        assert now is runner and now.state == "crashed" and now.crash_stop == why
        host.sync_installs()
        assert next(iter(host.runners.values())) is runner  # and no later sync replaces it
