"""Each host replaces only the status rows it wrote itself (`host.supervise.status`).

Rows were keyed by the host's pid: hosts sharing a store on several machines, or in containers
where every host may be pid 1, deleted each other's rows on every publish (each host's apps
showed as running only until the other published, 2 s later), and a host that stopped cleared
the other's, so `app list`, `doctor` and the console said the other host's apps were not
running. On SQLite and on a shared PostgreSQL store, migrated from the old layout.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from host.migrate import migrate
from host.store import StoreTarget
from host.supervise.status import StatusBoard, read_status

PID = 1  # both hosts in containers of their own


def _two_hosts_one_pid(target: StoreTarget) -> None:
    a = StatusBoard(target, PID, "host-a")
    b = StatusBoard(target, PID, "host-b")
    try:
        now = time.time()
        a.publish(now, {"inst-1": ("app-one", {"state": "running"})})
        b.publish(now, {"inst-2": ("app-two", {"state": "running"})})
        a.publish(now + 2, {"inst-1": ("app-one", {"state": "running"})})
        assert set(read_status(target)) == {"inst-1", "inst-2"}
        a.clear()  # host A stops: host B's app still runs
        assert set(read_status(target)) == {"inst-2"}
        # An app that moved from A to B is B's row now: A's next publish leaves it alone.
        b.publish(now + 4, {"inst-2": ("app-two", {}), "inst-1": ("app-one", {})})
        a.publish(now + 4, {})
        assert set(read_status(target)) == {"inst-1", "inst-2"}
    finally:
        a.close()
        b.close()


def test_hosts_with_one_pid_keep_each_others_rows_on_sqlite(tmp_path: Path) -> None:
    _two_hosts_one_pid(tmp_path / "host.db")


def test_hosts_with_one_pid_keep_each_others_rows_on_postgresql(pg_url: str) -> None:
    migrate(pg_url)
    _two_hosts_one_pid(pg_url)


def test_a_store_of_the_old_layout_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    """A home written by the previous release (rows keyed by pid alone) opens: the column is
    added, its rows read as before (owned by no host id: shown, and stale once old)."""
    db = tmp_path / "host.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE schema_meta(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                  " WITHOUT ROWID")
        c.execute("INSERT INTO schema_meta VALUES('runner_status', 1)")
        c.execute("CREATE TABLE runner_status(install_id TEXT PRIMARY KEY, app_id TEXT NOT NULL,"
                  " host_pid INTEGER NOT NULL, updated_at REAL NOT NULL, status TEXT NOT NULL)")
        c.execute("INSERT INTO runner_status VALUES('inst-old', 'old', 7, 1.0, '{}')")
    c.close()
    board = StatusBoard(db, 7, "host-new")
    try:
        board.publish(time.time(), {"inst-new": ("new", {})})
        assert set(read_status(db)) == {"inst-old", "inst-new"}
    finally:
        board.close()
