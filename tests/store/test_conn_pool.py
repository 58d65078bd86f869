"""Connections handed from a thread that is done to the next one (`host.store.pool`).

What the pool must never do: hand out a connection inside a transaction, hand a parent's
connection to a forked child, or let a connection that moved threads read a stale snapshot
(a stale install record would let a disabled app's call through the gate).
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from host.apps.installs import InstallStore
from host.gate.installview import InstallView
from host.server.db import Database
from host.store.pool import ConnPool, release_thread
from host.store.sqlite import SqliteStore


def _in_thread(fn: Callable[[], Any]) -> Any:
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(fn()))
    t.start()
    t.join(10)
    return box[0]


@pytest.fixture()
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "host.db")
    with s.transaction() as c:
        c.execute("CREATE TABLE t(v INTEGER)")
        c.execute("INSERT INTO t VALUES (1)")
    return s


def test_a_released_connection_serves_the_next_thread(store: SqliteStore) -> None:
    def use_and_release() -> Any:
        c = store.conn()
        c.execute("SELECT v FROM t").fetchall()
        release_thread()
        return c

    first = _in_thread(use_and_release)
    assert store.idle_count() == 1
    second = _in_thread(use_and_release)
    assert second is first  # taken from the pool, not opened
    assert len(store._opened) == 2  # the fixture's thread's and the pooled one


def test_a_connection_mid_transaction_is_closed_not_pooled(store: SqliteStore) -> None:
    def release_inside_a_transaction() -> None:
        c = store.conn()
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO t VALUES (2)")
        store.release()

    _in_thread(release_inside_a_transaction)
    assert store.idle_count() == 0
    assert store.conn().execute("SELECT count(*) FROM t").fetchone()[0] == 1  # rolled back
    with store.transaction() as c:  # and the write lock is free
        c.execute("INSERT INTO t VALUES (3)")


def test_a_moved_connection_sees_commits_made_while_it_was_idle(store: SqliteStore) -> None:
    def read_and_release() -> int:
        v = int(store.conn().execute("SELECT max(v) FROM t").fetchone()[0])
        release_thread()
        return v

    assert _in_thread(read_and_release) == 1
    with store.transaction() as c:  # another connection commits meanwhile
        c.execute("INSERT INTO t VALUES (7)")
    assert _in_thread(read_and_release) == 7


def test_warm_opens_ahead_and_a_new_thread_opens_none(store: SqliteStore) -> None:
    assert store.warm(2) == 2
    assert store.warm(2) == 0  # already idle
    opened = len(store._opened)
    got = _in_thread(store.conn)
    assert len(store._opened) == opened  # nothing opened on the thread's first use
    assert got.execute("SELECT v FROM t").fetchone()[0] == 1
    store.close_all()
    assert store.idle_count() == 0


def test_a_forked_child_never_takes_its_parents_connection() -> None:
    pool = ConnPool()

    class Idle:
        in_transaction = False

    assert pool.give(Idle())
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection must not be handed out here
        os._exit(0 if pool.take() is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.take() is not None  # the parent still has it


def test_the_pool_is_bounded() -> None:
    pool = ConnPool(limit=2)

    class Idle:
        in_transaction = False

    assert pool.give(Idle()) and pool.give(Idle())
    assert not pool.give(Idle())  # the caller closes it
    assert len(pool) == 2


def test_the_servers_database_pools_too(tmp_path: Path) -> None:
    db = Database(tmp_path / "server.db")

    def use_and_release() -> Any:
        c = db.conn()
        c.execute("SELECT count(*) FROM users").fetchone()
        release_thread()
        return c

    first = _in_thread(use_and_release)
    assert _in_thread(use_and_release) is first
    db.close()


def test_the_install_view_sees_a_disable_through_a_moved_connection(tmp_path: Path) -> None:
    """The gate's install cache is keyed per thread and per connection: a runner thread that
    takes a pooled connection must still see an install disabled since it was last used."""
    from apphelp import install, write_app

    from host.home import Home

    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "pool-app", ["livechat.read"],
                                  ["livechat.room_started"], "class TestApp:\n    pass\n"))
    installs = InstallStore(home.host_store)
    probe = SqliteStore(home.host_db)
    view = InstallView(installs, probe.conn)

    def enabled_then_release() -> bool:
        got, _epoch, _version = view.get(rec.install_id)
        release_thread()
        return got is not None and got.enabled

    assert _in_thread(enabled_then_release)
    InstallStore(home.host_store).set_enabled(rec.install_id, False, reason="test")
    assert not _in_thread(enabled_then_release)


def test_close_idle_closes_only_the_pooled_ones(store: SqliteStore) -> None:
    mine = store.conn()
    store.warm(2)
    idle = [store._pool.take(), store._pool.take()]
    for c in idle:
        assert store._pool.give(c)
    store.close_idle()
    assert store.idle_count() == 0
    for c in idle:
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            c.execute("SELECT 1")
    assert mine.execute("SELECT v FROM t").fetchone()[0] == 1  # this thread's is untouched
