"""The write turn (`host.store.writeturn`): a writer waits for SQLite's write lock in its
process's queue and by short retries, never in SQLite's busy handler (whose first sleep is a
millisecond), and still fails as before when the lock never comes.

No timing here: the poll schedule is observed through the sleeps it asks for, and the speed it
buys is a `stockade bench --load` figure (docs/BENCH.md, "Waiting for the write lock")."""
from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from host.store import writeturn
from host.store.sqlite import BUSY_TIMEOUT_MS, SqliteStore, immediate


def _conn(path: Path, busy_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    c = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute(f"PRAGMA busy_timeout={busy_ms}")
    c.execute("CREATE TABLE IF NOT EXISTS n (k INTEGER PRIMARY KEY, v INTEGER)")
    c.execute("INSERT OR IGNORE INTO n VALUES (1, 0)")
    return c


def _busy_ms(c: sqlite3.Connection) -> int:
    return int(c.execute("PRAGMA busy_timeout").fetchone()[0])


def test_a_waiter_retries_with_short_sleeps_not_sqlites(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's connection (here: one with no turn) holds the write lock; the waiter
    retries after 50, 100, 200, 400 µs … with the busy handler off between its tries, and gets
    the lock once the holder commits. With SQLite's handler doing the waiting, no sleep of ours
    would run and the holder, released only from one, would keep the lock until the timeout."""
    db = tmp_path / "t.db"
    holder, waiter = _conn(db), _conn(db)
    holder.execute("BEGIN IMMEDIATE")
    pauses: list[float] = []
    busy_between: list[int] = []

    def sleep(s: float) -> None:
        pauses.append(s)
        busy_between.append(_busy_ms(waiter))
        if len(pauses) == 6:
            holder.execute("COMMIT")

    monkeypatch.setattr(writeturn, "sleep", sleep)
    with immediate(waiter, os.path.abspath(db), BUSY_TIMEOUT_MS) as c:
        c.execute("UPDATE n SET v = v + 1")
    assert pauses == pytest.approx([50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 1e-3])
    assert busy_between == [0] * 6  # SQLite's handler never waited
    assert _busy_ms(waiter) == BUSY_TIMEOUT_MS  # and is back for everything else
    assert waiter.execute("SELECT v FROM n").fetchone()[0] == 1


def test_a_lock_that_never_comes_fails_as_before_and_frees_the_turn(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    holder, waiter = _conn(db), _conn(db, busy_ms=150)
    holder.execute("BEGIN IMMEDIATE")
    where = os.path.abspath(db)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        with immediate(waiter, where, 150):
            pass
    assert not writeturn.turn_for(where).lock.locked()
    assert _busy_ms(waiter) == 150 and not waiter.in_transaction
    holder.execute("COMMIT")
    with immediate(waiter, where, 150) as c:  # the turn was given back: the next one goes
        c.execute("UPDATE n SET v = 7")


def test_a_failed_body_rolls_back_and_frees_the_turn(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    c, where = _conn(db), os.path.abspath(tmp_path / "t.db")
    with pytest.raises(ZeroDivisionError):
        with immediate(c, where, BUSY_TIMEOUT_MS):
            c.execute("UPDATE n SET v = 99")
            raise ZeroDivisionError
    assert not writeturn.turn_for(where).lock.locked()
    assert c.execute("SELECT v FROM n").fetchone()[0] == 0


class _InterruptedRestore:
    """A connection whose busy timeout cannot be put back after its BEGIN went through: a
    Ctrl-C (or any error) landing in `_begin_polling`'s last statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA busy_timeout=") and self.conn.in_transaction:
            raise KeyboardInterrupt
        return self.conn.execute(sql)


def test_a_begin_interrupted_after_the_lock_leaves_no_transaction_open(tmp_path: Path) -> None:
    """The caller's `with` is not open yet when `begin` raises, so nothing else would end the
    transaction: left open, it held the database's write lock for the thread's whole life."""
    db = tmp_path / "t.db"
    c, where = _conn(db), os.path.abspath(db)
    turn = writeturn.turn_for(where)
    with pytest.raises(KeyboardInterrupt):
        writeturn.begin(_InterruptedRestore(c), turn, BUSY_TIMEOUT_MS)  # type: ignore[arg-type]
    assert not c.in_transaction and not turn.lock.locked()
    other = _conn(db, busy_ms=100)
    with immediate(other, where, 100) as o:  # the file's write lock is free for others
        o.execute("UPDATE n SET v = 5")


def test_a_nested_transaction_fails_at_once_not_on_its_own_turn(tmp_path: Path) -> None:
    """The turn is not re-entrant: a second `BEGIN` on a connection already in a transaction
    must raise SQLite's error at once, not wait `busy_timeout` on the turn its thread holds."""
    db = tmp_path / "t.db"
    c, where = _conn(db), os.path.abspath(db)
    with immediate(c, where, 60_000):
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
            with immediate(c, where, 60_000):
                pass
        c.execute("UPDATE n SET v = 5")
    assert c.execute("SELECT v FROM n").fetchone()[0] == 5
    assert not writeturn.turn_for(where).lock.locked()


def _add(store: SqliteStore, times: int) -> None:
    for _ in range(times):
        with store.transaction() as c:
            (v,) = c.execute("SELECT v FROM n WHERE k = 1").fetchone()
            c.execute("UPDATE n SET v = ? WHERE k = 1", (v + 1,))


def test_threads_and_processes_never_write_at_once(tmp_path: Path) -> None:
    """Read-modify-write in every transaction, from four threads here and two processes more:
    the turn only orders writers, SQLite's lock still makes each transaction exclusive, so no
    increment is lost (and none fails "database is locked")."""
    db = tmp_path / "t.db"
    _conn(db).close()
    store = SqliteStore(db)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_in_process, args=(str(db), 150)) for _ in range(2)]
    for p in procs:
        p.start()
    threads = [threading.Thread(target=_add, args=(store, 150)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert store.conn().execute("SELECT v FROM n").fetchone()[0] == 6 * 150


def _add_in_process(path: str, times: int) -> None:
    _add(SqliteStore(Path(path)), times)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_child_forked_while_a_turn_is_held_starts_with_its_own(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    c, where = _conn(db), os.path.abspath(db)
    with immediate(c, where, BUSY_TIMEOUT_MS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the parent's held turn must not be its own
            os.write(w, b"held" if writeturn.turn_for(where).lock.locked() else b"free")
            os._exit(0)
        os.close(w)
        said = os.read(r, 8)
        os.waitpid(pid, 0)
        os.close(r)
    assert said == b"free"
