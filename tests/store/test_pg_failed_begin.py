"""A write transaction whose wait for the store's write lock fails leaves its connection usable.

`BEGIN; SELECT pg_advisory_xact_lock(...)` is one round trip: when the lock wait fails (the
10 s `lock_timeout` behind a wedged host, a cancel, a Ctrl-C) the transaction has begun and is
aborted. Nothing rolled it back, so every later transaction on that thread's pooled connection
failed with "current transaction is aborted" until the process restarted: one slow moment of
another host cost this host every call on that thread for good.
"""
from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from pghelp import until

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.records import AuditError
from host.migrate import migrate
from host.store.base import PgError
from host.store.pg import WRITE_LOCK

T0 = 1_700_000_000.0
REC = AuditRecord(kind="lifecycle", app_id="a", code="x")


def _waiting_on_a_lock(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                        (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


@contextmanager
def _when_waiting(url: str, pid: int, act: Callable[[], None]) -> Iterator[None]:
    """Run `act` on a thread of its own once backend `pid` waits on a lock."""
    def run() -> None:
        until(lambda: _waiting_on_a_lock(url, pid), "the write to wait on the lock", 10)
        act()

    t = threading.Thread(target=run)
    t.start()
    try:
        yield
    finally:
        t.join(15)


def _cancel(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT pg_cancel_backend(%s)", (pid,))


@pytest.mark.parametrize("how", ["lock_timeout", "cancel", "interrupt"])
def test_a_failed_wait_for_the_write_lock_leaves_the_connection_usable(
        pg_url: str, tmp_path: Path, how: str) -> None:
    migrate(pg_url)
    led = Ledger(pg_url, ManualClock(T0), anchor_path=tmp_path / "audit.anchor",
                 key_path=tmp_path / "anchor.key")
    assert led.append(REC) == 1
    conn = led.store.conn()  # this thread's pooled connection
    pid = conn.raw.info.backend_pid
    if how == "lock_timeout":
        conn.raw.execute(b"SET lock_timeout = 200")  # the store's 10 s, shortened
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))  # a wedged host holds it
        # The log's own error, for a store of either kind (its callers catch that one), with
        # the driver's as its cause.
        if how == "lock_timeout":
            with pytest.raises(AuditError, match="lock timeout") as failed:
                led.append(REC)
            assert isinstance(failed.value.__cause__, PgError)
        elif how == "cancel":
            with _when_waiting(pg_url, pid, lambda: _cancel(pg_url, pid)), \
                    pytest.raises(AuditError, match="canceling statement") as failed:
                led.append(REC)
            assert isinstance(failed.value.__cause__, PgError)
        else:  # a Ctrl-C in the wait: psycopg cancels the statement, then re-raises
            # Python's own handler, as under a terminal: a suite started in the background by a
            # non-interactive shell inherits SIGINT ignored, and interrupt_main then does nothing.
            before = signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                with _when_waiting(pg_url, pid, _thread.interrupt_main), \
                        pytest.raises(KeyboardInterrupt):
                    led.append(REC)
            finally:
                signal.signal(signal.SIGINT, before)
        other.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
    assert [led.append(REC) for _ in range(3)] == [2, 3, 4]  # the next writes go through
    assert led.store.conn() is conn and not conn.in_transaction  # on the same connection
    res = led.audit.verify()
    assert res.ok and res.records == 4, res
    led.close()


def test_a_begin_that_fails_on_its_own_is_rolled_back_too(pg_url: str) -> None:
    """`PgConn.begin` is also reached without `transaction()` (a `BEGIN IMMEDIATE` sent to a
    shared store's connection): it cleans up after itself, whoever called it."""
    from host.store import open_store

    migrate(pg_url)
    store = open_store(pg_url)
    conn = store.conn()
    conn.raw.execute(b"SET lock_timeout = 100")
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
        with pytest.raises(PgError, match="lock timeout"):
            conn.execute("BEGIN IMMEDIATE")
        assert not conn.in_transaction
        conn.abandon()  # nothing open: a no-op, twice in a row
        conn.abandon()
        assert not conn.raw.closed
    with store.transaction() as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    store.close_all()
