"""A SQLite home's schema is not upgraded under a host that serves it (review finding: any
command of a newer release, or a newer `serve` started beside it, upgraded the tables of a home
an older `serve` was serving; that host went on writing the layout it knew). The serving host
here is a real second process holding `host.lock` as a host's lease does (`host.ledger.lease`).
"""
from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app
from clihelp import run_main

from host.apps.installschema import SCHEMA_COMPONENT, SCHEMA_VERSION
from host.cli.serve_cmd import build_server
from host.clock import SystemClock
from host.errors import StartRefused
from host.home import Home
from host.ledger.lease import HomeLease
from host.server.migrations import SCHEMA_VERSION as SERVER_SCHEMA_VERSION
from host.server.migrations import SERVER_VERSION_DDL, migration_statements
from host.store import SchemaInUse, SqliteStore, Step, ensure_schema

SRC = '''
from stockade import App

class TestApp(App):
    pass
'''
# A host's lease, as `HomeLease` takes it: a shared flock on HOME/host.lock, held until stdin
# closes.
HOLDER = ("import fcntl, os, sys\n"
          "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
          "fcntl.flock(fd, fcntl.LOCK_SH)\n"
          "print('held', flush=True)\n"
          "sys.stdin.read()\n")


@contextlib.contextmanager
def served(home: Home) -> Iterator[int]:
    """Another process holds the home's lease for the block; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(home.lease_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def _sql(db: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as c:
        for s in statements:
            c.execute(s)
        c.commit()


def _installs_version(home: Home) -> int:
    with contextlib.closing(sqlite3.connect(home.host_db)) as c:
        row = c.execute("SELECT version FROM schema_meta WHERE component = ?",
                        (SCHEMA_COMPONENT,)).fetchone()
    return int(row[0])


def _server_version(home: Home) -> int:
    with contextlib.closing(sqlite3.connect(home.host_db)) as c:
        return int(c.execute("SELECT version FROM schema_version").fetchone()[0])


@pytest.fixture(name="home")
def home_fixture(tmp_path: Path) -> Home:
    """A home with an app, whose install store is at version 1 (before `crash_stop`), as an
    older release left it."""
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "older", ["livechat.read"], [], SRC))
    build_server(home, SystemClock()).close()
    assert SCHEMA_VERSION == 2  # version 2 added crash_stop (host/apps/installschema.py)
    _sql(home.host_db, "ALTER TABLE install_installs DROP COLUMN crash_stop",
         f"UPDATE schema_meta SET version = 1 WHERE component = '{SCHEMA_COMPONENT}'")
    return home


def test_a_command_does_not_upgrade_a_home_another_host_serves(
        home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with served(home) as pid:
        code, err = run_main(home.root, capsys, monkeypatch, "app", "list")
        assert _installs_version(home) == 1  # before: 2, under the serving host
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: "), err
    assert f"process {pid}" in lines[0] and "host.lock" in lines[0], err
    assert "installs 1 to 2" in lines[0], err
    assert lines[1].startswith("hint: stop that host"), err
    assert "unexpected" not in err and "please report" not in err, err
    # Once that host has stopped, the same command upgrades the home.
    code, err = run_main(home.root, capsys, monkeypatch, "app", "list")
    assert code == 0, err
    assert _installs_version(home) == SCHEMA_VERSION


def _older_server(db: Path) -> None:
    """The embedded server's tables at the version before this release's, as an older
    release made them."""
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute(SERVER_VERSION_DDL)
        for i in range(SERVER_SCHEMA_VERSION - 1):
            for stmt in migration_statements(i, "sqlite"):
                c.execute(stmt)
        c.execute("INSERT INTO schema_version (id, version) VALUES (1, ?)",
                  (SERVER_SCHEMA_VERSION - 1,))
        c.commit()


def test_the_servers_tables_are_not_upgraded_under_a_serving_host(tmp_path: Path) -> None:
    home = Home(tmp_path / "server-home").ensure()
    _older_server(home.host_db)
    with served(home) as pid, pytest.raises(StartRefused) as refused:
        build_server(home, SystemClock())  # `serve`'s own open of the server
    assert f"process {pid}" in refused.value.message
    assert refused.value.hint.startswith("stop that host")
    assert _server_version(home) == SERVER_SCHEMA_VERSION - 1  # before: upgraded
    build_server(home, SystemClock()).close()  # no one serving: upgraded
    assert _server_version(home) == SERVER_SCHEMA_VERSION


def test_a_component_upgrade_is_refused_and_then_made(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    v1: tuple[str | Step, ...] = ("CREATE TABLE IF NOT EXISTS t (a TEXT)",)
    store = SqliteStore(db)
    try:
        ensure_schema(store, "t", 1, v1)
        with served(Home(tmp_path)):
            ensure_schema(store, "t", 1, v1)  # current: nothing to upgrade, nothing refused
            with pytest.raises(SchemaInUse):
                ensure_schema(store, "t", 2, (*v1, Step(2, "ALTER TABLE t ADD COLUMN b TEXT")))
            cols = [r[1] for r in store.conn().execute("PRAGMA table_info(t)")]
            assert cols == ["a"]
        ensure_schema(store, "t", 2, (*v1, Step(2, "ALTER TABLE t ADD COLUMN b TEXT")))
        assert [r[1] for r in store.conn().execute("PRAGMA table_info(t)")] == ["a", "b"]
    finally:
        store.close_all()


def test_a_host_holding_its_own_lease_still_upgrades(tmp_path: Path) -> None:
    """The host's own lease is not another host: a component it opens after it took the lease
    is upgraded (its stores are opened before the lease, `host.runtime.Host`)."""
    db = tmp_path / "host.db"
    v1: tuple[str | Step, ...] = ("CREATE TABLE IF NOT EXISTS t (a TEXT)",)
    store = SqliteStore(db)
    lease = HomeLease(Home(tmp_path).lease_path)
    try:
        ensure_schema(store, "t", 1, v1)
        lease.acquire(lambda: None)
        ensure_schema(store, "t", 2, (*v1, Step(2, "ALTER TABLE t ADD COLUMN b TEXT")))
        assert [r[1] for r in store.conn().execute("PRAGMA table_info(t)")] == ["a", "b"]
    finally:
        lease.release()
        store.close_all()


def test_store_migrate_names_the_serving_host_and_what_to_do(
        home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with served(home) as pid:
        code, err = run_main(home.root, capsys, monkeypatch, "store", "migrate")
    assert code == 1, err
    assert f"process {pid}" in err and "hint: stop that host" in err, err
    assert "newer release" not in err, err  # before: a newer store's hint
    assert _installs_version(home) == 1


def test_a_host_starting_alone_upgrades_the_home_and_one_beside_another_is_refused(
        home: Home) -> None:
    from host.hostconfig import HostConfig
    from host.runtime import Host

    config = HostConfig(watch=False, use_zygote=False)
    with served(home) as pid, pytest.raises(StartRefused) as refused:
        Host(home, config=config)  # a newer serve started beside the older one
    assert f"process {pid}" in refused.value.message
    assert _installs_version(home) == 1
    host = Host(home, config=config)  # alone: its stores are upgraded as it opens them
    try:
        assert _installs_version(home) == SCHEMA_VERSION
    finally:
        host.stop()
