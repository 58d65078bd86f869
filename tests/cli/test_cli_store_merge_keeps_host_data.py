"""`stockade store migrate` never replaces the embedded server's data that host.db already holds.

The merge (`host/mergeserver.py`) dropped host.db's server tables before copying server.db in,
taking any it found for a copy an interrupted merge had left. But host.db holds the live server
data of every home made, or merged, by this release: a `server.db` that appears there later (an
older release run once on the home makes an empty one; a backup restored; the kept file renamed
back for a rollback) was copied over it. Every user, room, message, token and op record in
host.db was dropped, exit 0, "moved server.db into host.db". And a kept file whose name (to the
second) was taken was overwritten: the earlier copy of the old data lost too.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures
from test_cli_store_merge import _old_home

from host import mergeserver
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM


def _usernames(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {str(r[0]) for r in c.execute("SELECT username FROM users")}


def _merged_and_used(cli: Run, home: Path) -> tuple[Home, str, set[str]]:
    """A home merged by `store migrate`, then served from host.db (a user made after)."""
    h = _old_home(home)
    r = cli("store", "migrate", "--json")
    assert r.exit_code == 0, r.output
    kept = json.loads(r.stdout)["server_merged"]["kept_as"]
    server = EmbeddedServer(h.server_db, SystemClock())
    server.users_create(SYSTEM, "after-the-move", "A", "user")
    server.close()
    return h, kept, _usernames(h.host_db)


def test_a_server_db_made_after_the_merge_never_replaces_host_dbs_data(
        cli: Run, home: Path) -> None:
    h, _, users = _merged_and_used(cli, home)
    EmbeddedServer(h.root / "server.db", SystemClock()).close()  # an older release, run once
    r = cli("store", "migrate")
    assert r.exit_code == 1, r.output
    assert "host.db already holds" in r.stderr and "Traceback" not in r.output
    assert _usernames(h.host_db) == users and "after-the-move" in users
    assert (h.root / "server.db").exists()  # left where it is, for the operator to look at


def test_the_kept_file_renamed_back_never_replaces_host_dbs_data(cli: Run, home: Path) -> None:
    """A rollback restores server.db by renaming the kept file back (its inode, its mark)."""
    h, kept, users = _merged_and_used(cli, home)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{h.root / kept}{suffix}").exists():
            Path(f"{h.root / kept}{suffix}").rename(h.root / f"server.db{suffix}")
    r = cli("store", "migrate")
    assert r.exit_code == 1 and "host.db already holds" in r.stderr, r.output
    assert _usernames(h.host_db) == users


def test_a_merge_whose_name_for_the_old_file_is_taken_keeps_both(
        cli: Run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = _old_home(home)
    monkeypatch.setattr(mergeserver.time, "strftime", lambda *_: "20260101000000")
    taken = h.root / "server.db.merged-20260101000000"
    taken.write_bytes(b"an earlier merge's old file")
    merged = mergeserver.merge_server_db(h)
    assert merged is not None and merged.kept_as != taken.name
    assert taken.read_bytes() == b"an earlier merge's old file"
    assert "old-0" in _usernames(h.root / merged.kept_as)


def test_a_move_done_is_not_reported_undone_when_its_marker_cannot_be_dropped(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The marker naming the copy is dropped after the rename; a failure there (a full disk)
    leaves the move done, and must not be said as "nothing changed"."""
    h = _old_home(home)
    real_connect = sqlite3.connect

    class Full:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if sql.startswith(f'DROP TABLE IF EXISTS main."{mergeserver.COPYING}"'):
                raise sqlite3.OperationalError("database or disk is full")
            return self._conn.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._conn, name)

    def connect(path: object, *args: object, **kwargs: object) -> object:
        conn = real_connect(path, *args, **kwargs)  # type: ignore[arg-type]
        return Full(conn) if Path(str(path)) == h.host_db else conn

    monkeypatch.setattr(mergeserver.sqlite3, "connect", connect)
    merged = mergeserver.merge_server_db(h)
    monkeypatch.setattr(mergeserver.sqlite3, "connect", real_connect)
    assert merged is not None and not (h.root / "server.db").exists()
    assert "old-0" in _usernames(h.host_db)
