"""A write transaction whose connection is found broken at its BEGIN begins again, once, on a
fresh connection; one that breaks after its BEGIN is never retried; a fenced host stays fenced;
an idle pooled connection whose session ended is never handed to a thread.

A session the server ended (a restart ends them all; `pg_terminate_backend` ends one, as here)
is learnt of only at the connection's next statement. Found at a BEGIN, nothing of the
transaction was sent on it, so beginning again elsewhere cannot apply anything twice; found
later, the transaction's statements may have applied (a COMMIT whose answer was lost), so the
failure goes to the caller, whose outcome machinery decides.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from pghelp import until

from host.migrate import migrate
from host.store.base import Fenced, PgError
from host.store.pg import PgConn, PgStore


def _end_session(url: str, conn: PgConn) -> None:
    pid = conn.raw.info.backend_pid
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _alive(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() \
            is not None


def _rows(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as c:
        return [int(r[0]) for r in c.execute("SELECT n FROM broken_begin ORDER BY n")]


@pytest.fixture
def store(pg_url: str) -> Iterator[PgStore]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE broken_begin(n INTEGER PRIMARY KEY)")
    s = PgStore(pg_url)
    yield s
    s.close_all()


def test_a_begin_on_an_ended_session_runs_on_a_fresh_connection(pg_url: str,
                                                                store: PgStore) -> None:
    old = store.conn()
    _end_session(pg_url, old)
    runs = 0
    with store.transaction() as c:
        runs += 1
        c.execute("INSERT INTO broken_begin(n) VALUES (?)", (1,))
    assert runs == 1 and c is not old and old.raw.closed
    assert store.conn() is c  # the thread keeps the fresh one
    assert _rows(pg_url) == [1]


def test_a_session_ended_after_its_begin_is_not_retried(pg_url: str, store: PgStore) -> None:
    runs = 0
    with pytest.raises(PgError), store.transaction() as c:
        runs += 1
        c.execute("INSERT INTO broken_begin(n) VALUES (?)", (2,))
        _end_session(pg_url, c)
        c.execute("INSERT INTO broken_begin(n) VALUES (?)", (3,))
    assert runs == 1
    assert _rows(pg_url) == []  # its session ended: rolled back, and never run again
    with store.transaction() as c:  # the next transaction opens a fresh connection
        c.execute("INSERT INTO broken_begin(n) VALUES (?)", (4,))
    assert _rows(pg_url) == [4]


def test_a_fenced_store_is_refused_on_the_fresh_connection_too(pg_url: str,
                                                               store: PgStore) -> None:
    migrate(pg_url)  # `host_leases`: no row for this host, so its fence refuses every write
    store.fence("gone-host")
    _end_session(pg_url, store.conn())
    with pytest.raises(Fenced), store.transaction() as c:  # the retry's BEGIN checks it too
        c.execute("INSERT INTO broken_begin(n) VALUES (?)", (5,))
    assert _rows(pg_url) == []


def test_an_idle_pooled_connection_whose_session_ended_is_not_handed_out(
        pg_url: str, store: PgStore) -> None:
    """A thread taking a pooled connection whose session the server ended meanwhile gets a
    fresh one: its first statement may be a read, with no BEGIN to find the break and retry."""
    assert store.warm(1) == 1
    idle = store._pool.take()
    assert idle is not None and store._pool.give(idle)
    pid = idle.raw.info.backend_pid
    _end_session(pg_url, idle)
    until(lambda: not _alive(pg_url, pid), "the session to end", 10)
    got: list[object] = []

    def read() -> None:
        c = store.conn()
        got.append(c)
        got.append(c.execute("SELECT count(*) FROM broken_begin").fetchone()[0])
        store.release()
    t = threading.Thread(target=read)
    t.start()
    t.join(15)
    assert got[0] is not idle and got[1] == 0, got
