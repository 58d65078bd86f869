"""DESIGN rule 9's bound on reads also holds while a group commit is under way and stuck.

A commit takes the waiting reads' records out of the batch before its transaction begins. If
that transaction waits for the store's write lock (another process's transaction: a CLI command,
a second host, up to the store's 10 s busy timeout), those records are no more durable than
waiting ones: a read held meanwhile must not be served once they are past the bound, or a crash
then loses reads served long after the records before them should have been durable.

"On disk" is what a second, independent connection sees (what a host started after a crash
would find). The stuck commit is a transaction that waits on an Event, so nothing depends on
timing except one wait that only a read served too early can win.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger import groupcommit
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import Ledger
from host.store import Conn, open_store

T0 = 1_700_000_000.0


def _read(n: int) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a1", install_id="i1", action="users.get",
                       rules=("permit.read",), policy_rev="r" * 64,
                       args_digest=digest_args({"n": n}), write=False)


def _digests_on_disk(db: Path) -> list[object]:
    store = open_store(db)
    try:
        rows = store.conn().execute("SELECT body FROM audit ORDER BY seq").fetchall()
        return [json.loads(r[0]).get("args_digest") for r in rows]
    finally:
        store.close()


def _stuck_commit(led: Ledger, monkeypatch: pytest.MonkeyPatch, *,
                  fails: bool) -> tuple[threading.Event, threading.Thread]:
    """Start a group commit of what waits on another thread, its transaction stuck until the
    returned Event is set (then it commits, or fails as a lock held past the busy timeout
    does); returns once it has taken the records."""
    assert led.batch is not None
    batch = led.batch
    real = batch.store.transaction
    release = threading.Event()
    began = threading.Event()

    @contextlib.contextmanager
    def waits_for_the_lock() -> Iterator[Conn]:
        if threading.get_ident() == committer.ident and not release.is_set():
            began.set()
            release.wait(10)
            if fails:
                raise sqlite3.OperationalError("database is locked")
        with real() as c:
            yield c

    monkeypatch.setattr(batch.store, "transaction", waits_for_the_lock)

    def commit() -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            batch.flush()

    committer = threading.Thread(target=commit, daemon=True)
    committer.start()
    assert began.wait(5)
    return release, committer


@pytest.mark.parametrize("fails", [False, True], ids=["commits", "fails"])
def test_no_read_is_served_while_a_stuck_commit_holds_records_past_the_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool) -> None:
    """Fails before: the second read was served at once, the first read's record (held past the
    bound by the stuck commit) not on disk; in a real run every read for 10 ms after each stuck
    take was served so."""
    db = tmp_path / "host.db"
    led = Ledger(db, ManualClock(T0), group_reads=True)
    assert led.batch is not None
    led.batch._thread = threading.current_thread()  # no flusher: the commits are the test's
    assert led.admit(_read(1), []).allowed  # held, served: within the bound
    release, committer = _stuck_commit(led, monkeypatch, fails=fails)
    time.sleep(groupcommit.READ_RECORD_WAIT_S + 0.002)  # its record is now past the bound
    seen: list[list[object]] = []

    def second_read() -> None:
        led.admit(_read(2), [])
        seen.append(_digests_on_disk(db))  # what survives a crash the moment it is served

    reader = threading.Thread(target=second_read, daemon=True)
    reader.start()
    reader.join(0.05)  # a read served at once (the fault) ends here
    release.set()
    reader.join(10)
    committer.join(10)
    assert not reader.is_alive() and not committer.is_alive()
    kept = [led.args_key.mac(digest_args({"n": n})) for n in (1, 2)]  # stored keyed
    assert seen and kept[0] in seen[0], "served before the late record was durable"
    led.batch.flush()
    assert _digests_on_disk(db) == kept
    led.batch._thread = None  # the test stood in for the flusher: nothing to join
    led.close()
