"""The room lists read an index in their own order, on a home made at any earlier server schema
and on a PostgreSQL store taken through `stockade store migrate`: before, `list_rooms` sorted
the whole rooms table on every call (an app's livechat.list_rooms, a manager's livechat/rooms),
so its cost grew with every room ever closed."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from host.clock import ManualClock
from host.migrate import migrate, store_status
from host.server import EmbeddedServer, rooms
from host.server.migrations import MIGRATIONS, SCHEMA_VERSION, _statements
from host.store import StoreError

ROOM_INDEXES = {"rooms_created", "rooms_open_created", "rooms_served_open", "rooms_visitor_open"}


def _v5_home(path: Path) -> None:
    """A server.db as release schema 5 left it, with a few rooms in it."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
              " version INTEGER NOT NULL)")
    for m in MIGRATIONS[:5]:
        for stmt in _statements(m):
            c.execute(stmt)
    c.execute("INSERT INTO visitors (id, token, created_at, updated_at) VALUES"
              " ('v1', 'widget-token-1', 0, 0)")
    for i in range(3):
        c.execute("INSERT INTO rooms (id, visitor_id, open, created_at) VALUES (?, 'v1', ?, ?)",
                  (f"r{i}", int(i == 2), float(i)))
    c.execute("INSERT INTO schema_version VALUES (1, 5)")
    c.close()


def _issued(conn: sqlite3.Connection, read: object) -> list[str]:
    said: list[str] = []
    conn.set_trace_callback(said.append)
    try:
        assert callable(read)
        read()
    finally:
        conn.set_trace_callback(None)
    return [s for s in said if s.lstrip().upper().startswith("SELECT")]


def _assert_indexed(c: sqlite3.Connection, sql: str) -> None:
    """Each table read is an index search or ordered scan, and nothing is sorted after."""
    plan = [str(r[3]) for r in c.execute("EXPLAIN QUERY PLAN " + sql)]
    reads = [p for p in plan if p.startswith(("SCAN rooms", "SEARCH rooms"))]
    assert reads and all("INDEX rooms_" in p for p in reads), (sql, plan)
    assert not any("TEMP B-TREE" in p for p in plan), (sql, plan)


def test_a_home_at_schema_5_takes_the_room_indexes_and_the_lists_use_them(
        tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    _v5_home(path)
    server = EmbeddedServer(path, ManualClock())
    try:
        c = server.db.conn()
        assert c.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        names = {r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rooms'")}
        assert ROOM_INDEXES <= names
        for open_ in (None, True, False):
            listed = rooms.list_rooms(c, open_)
            assert [r["id"] for r in listed] == [
                f"r{i}" for i in (2, 1, 0) if open_ is None or (i == 2) == open_]
            reads = [lambda open_=open_: rooms.list_rooms(c, open_),
                     lambda open_=open_: rooms.seen_by(c, "u1", open_)]
            for read in reads:
                for sql in _issued(c, read):
                    _assert_indexed(c, sql)
        assert rooms.open_room_of(c, "v1") is not None
        for sql in _issued(c, lambda: rooms.open_room_of(c, "v1")):
            _assert_indexed(c, sql)
    finally:
        server.close()


def test_a_postgresql_store_at_schema_5_is_refused_until_migrated(pg_url: str,
                                                                  tmp_path: Path) -> None:
    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        have = {r[0] for r in c.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'rooms'")}
        assert ROOM_INDEXES <= have
        for name in ROOM_INDEXES:  # back to what release schema 5 made
            c.execute(f"DROP INDEX {name}")
        c.execute("DROP TABLE sign_in_failures, sign_in_names")  # schema 7's
        c.execute("ALTER TABLE personal_tokens DROP COLUMN expires_at")  # schema 9's
        c.execute("UPDATE schema_version SET version = 5")
    with pytest.raises(StoreError, match="store migrate"):
        EmbeddedServer(pg_url, ManualClock())
    assert {s.name: s.current for s in store_status(pg_url)}["server"] is False
    migrate(pg_url)
    assert {s.name: s.current for s in store_status(pg_url)}["server"] is True
    with psycopg.connect(pg_url, autocommit=True) as c:
        have = {r[0] for r in c.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'rooms'")}
    assert ROOM_INDEXES <= have
    EmbeddedServer(pg_url, ManualClock()).close()
