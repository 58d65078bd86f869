"""Group commit of reads' records (DESIGN rule 9): durable before the next write is admitted,
and a crash loses only the reads still waiting.

"On disk" is what a second, independent connection to `host.db` sees: it reads only committed
transactions, exactly what a host started after a crash would find. The flusher is held off by
taking the batch's commit lock in the test's thread (the ledger's own writes on this thread
still pass: the lock is re-entrant), so nothing depends on timing.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from host.clock import ManualClock
from host.ledger import groupcommit
from host.ledger.audit import AuditLog, AuditRecord, append_in, digest_args
from host.ledger.groupcommit import INLINE_SHARE, ReadBatch
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.ledger.records import AuditError
from host.store import open_store

T0 = 1_700_000_000.0


def _read(n: int) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a1", install_id="i1", action="users.get",
                       rules=("permit.read",), policy_rev="r" * 64,
                       args_digest=digest_args({"n": n}), write=False)


def _write(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a1", install_id="i1", action="users.create",
                       op_id=op, write=True, rules=("permit.create",), policy_rev="r" * 64,
                       args_digest=digest_args({"op": op}))


def _on_disk(db: Path) -> list[dict[str, object]]:
    """Committed records, oldest first, through a fresh connection (what survives a crash)."""
    log = AuditLog(open_store(db), ManualClock(T0))
    try:
        rows = log.store.conn().execute("SELECT seq, body FROM audit ORDER BY seq").fetchall()
        return [{"seq": int(r[0]), **json.loads(r[1])} for r in rows]
    finally:
        log.store.close()


def _kept(led: Ledger, args: dict[str, int]) -> str:
    """The `args_digest` `led` stores for a record built with `digest_args(args)`: keyed
    (`host/ledger/argsdigest.py`)."""
    return led.args_key.mac(digest_args(args))


def _ledger(tmp_path: Path) -> tuple[Ledger, ReadBatch]:
    led = Ledger(tmp_path / "host.db", ManualClock(T0), group_reads=True)
    assert led.batch is not None
    return led, led.batch


def _dies(batch: ReadBatch) -> None:
    """The process holding `batch` dies (called with its commit lock held): what it held for
    the group commit is never committed, and its flusher commits nothing once the lock goes.
    Without this the test's own process, alive, would commit the held work after the
    survivor settled it, and the last record on disk would be a race."""
    with batch._lock:
        batch._closed = True
        batch._pending.clear()
        batch._clears.clear()
        batch._deferred.clear()


def test_reads_are_durable_before_the_next_write_is_admitted(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    with batch._commit:  # the flusher cannot commit: only the write can make them durable
        for n in (1, 2):
            assert led.admit(_read(n), []).allowed
        assert [r for r in _on_disk(tmp_path / "host.db")
                if r.get("action") == "users.get"] == []  # waiting, as rule 9 allows
        w = led.admit(_write("op1"), [])
        disk = _on_disk(tmp_path / "host.db")
        reads = [r for r in disk if r.get("action") == "users.get"]
        assert [r["args_digest"] for r in reads] == [_kept(led, {"n": n}) for n in (1, 2)]
        assert all(r["seq"] < w.seq for r in reads)  # in the chain before the write's decision
        assert all(r["allowed"] is True and r["code"] == "allow" for r in reads)
    led.close()
    assert AuditLog(open_store(tmp_path / "host.db"), ManualClock(T0)).verify().ok


def test_a_crash_loses_only_the_reads_still_waiting(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    with batch._commit:
        led.admit(_read(1), [])
        w = led.admit(_write("op1"), [])
        led.outcome(w.seq, "op1", True, None, False)
        led.admit(_read(2), [])
        # The process dies here: what a restart finds is what is committed.
        disk = _on_disk(tmp_path / "host.db")
        assert [(r["kind"], r.get("action")) for r in disk] == [
            ("decision", "users.get"), ("decision", "users.create"), ("outcome", "users.create")]
        assert AuditLog(open_store(tmp_path / "host.db"), ManualClock(T0)).verify().ok
    # Not dead after all: the flusher commits the waiting read on its own.
    deadline = time.monotonic() + 10
    while len(_on_disk(tmp_path / "host.db")) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _on_disk(tmp_path / "host.db")[-1]["args_digest"] == _kept(led, {"n": 2})
    led.close()


def test_a_write_that_rolls_back_keeps_the_reads_for_the_next_commit(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)

    def broken_counter(_pending: Sequence[str]) -> int:
        raise RuntimeError("server unreachable")

    with batch._commit:
        led.admit(_read(1), [])
        with pytest.raises(RuntimeError):
            led.admit(_write("op1"), [], 10, broken_counter)
        assert _on_disk(tmp_path / "host.db") == []  # rolled back, read included
        assert batch.pending() == 1  # ... and still waiting, not lost
        led.admit(_write("op2"), [])
        assert [r.get("action") for r in _on_disk(tmp_path / "host.db")] == [
            "users.get", "users.create"]
    led.close()


def test_denials_and_operator_records_commit_the_reads_first(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    with batch._commit:
        led.admit(_read(1), [])
        led.deny(AuditRecord(kind="decision", app_id="a1", install_id="i1",
                             action="users.create", code="permission_denied"))
        led.admit(_read(2), [])
        led.append(AuditRecord(kind="lifecycle", event="disable", app_id="a1"))
        assert [(r.get("action"), r.get("allowed")) for r in _on_disk(tmp_path / "host.db")] == [
            ("users.get", True), ("users.create", False), ("users.get", True), (None, None)]
    led.close()


def test_readers_in_the_host_see_the_reads_and_close_commits_them(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    led.admit(_read(1), [])
    assert led.audit.tail(1)[0].body["action"] == "users.get"
    led.admit(_read(2), [])
    led.close()
    assert len(_on_disk(tmp_path / "host.db")) == 2
    with pytest.raises(RuntimeError):
        batch.add("{}", T0)


def test_a_reader_waits_for_a_commit_that_has_taken_the_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read your own writes holds while another thread's commit is under way: that commit has
    taken the held outcome out of the batch, so the batch looks empty, yet nothing is committed.
    A reader that trusted the empty batch saw a finished call's intent still open (a create's
    success held by `hold_outcome` while the flusher was mid-commit)."""
    led, batch = _ledger(tmp_path)
    a = led.admit(_rated_read("r1"), [RATE])
    entered, go = threading.Event(), threading.Event()
    real = groupcommit.append_many_in

    def slow_append(conn: Any, items: Any) -> tuple[int, int]:
        entered.set()
        assert go.wait(10)
        return real(conn, items)

    monkeypatch.setattr(groupcommit, "append_many_in", slow_append)
    with batch._commit:  # the flusher waits: the commit below is the test's own
        led.hold_outcome(a.seq, "r1", "a1", "i1", "users.get")
    committer = threading.Thread(target=batch.flush)
    committer.start()
    assert entered.wait(10)  # the records are out of the batch, not yet committed
    assert batch.pending() == 0
    seen: list[list[int]] = []
    reader = threading.Thread(target=lambda: seen.append(
        [i.seq for i in led.pending_intents()]))
    reader.start()
    reader.join(0.3)  # a reader that does not wait has its answer by now
    go.set()
    reader.join(10)
    committer.join(10)
    assert seen == [[]]  # the call's outcome, and the end of its intent, were waited for
    led.close()


def test_the_window_may_not_exceed_rule_9(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="10 ms"):
        Ledger(tmp_path / "host.db", ManualClock(T0), group_reads=True, group_window_s=0.05)


def test_a_call_commits_the_batch_itself_once_the_oldest_read_is_old_enough(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a stream of reads the caller's thread commits them (no hand-off to the flusher
    on another core). No flusher runs here, so only the caller can have committed."""
    import threading

    # Not rule 9's bound: a sleep overshooting it on a loaded machine made the second read late
    # (it then waits for the other thread's commit, which waits for this one).
    monkeypatch.setattr(groupcommit, "READ_RECORD_WAIT_S", 60.0)
    led, batch = _ledger(tmp_path)
    batch._thread = threading.current_thread()  # as if started: no flusher thread
    due = batch.window_s * INLINE_SHARE + 0.001
    held, release = threading.Event(), threading.Event()

    def commit_elsewhere() -> None:
        with batch._commit:
            held.set()
            release.wait(10)

    # While another thread commits, a due call leaves the batch alone (it never waits).
    other = threading.Thread(target=commit_elsewhere)
    other.start()
    assert held.wait(10)
    assert led.admit(_read(1), []).allowed
    time.sleep(due)
    assert led.admit(_read(2), []).allowed
    assert batch.pending() == 2
    release.set()
    other.join(10)
    # The lock free, the next due call commits every waiting read before it returns.
    assert led.admit(_read(3), []).allowed  # not due: the oldest waited long enough, though
    assert batch.pending() == 0
    assert led.admit(_read(4), []).allowed  # the first of a new batch: waits
    assert batch.pending() == 1
    time.sleep(due)
    assert led.admit(_read(5), []).allowed
    assert batch.pending() == 0
    digests = [r["args_digest"] for r in _on_disk(tmp_path / "host.db")]
    assert digests == [_kept(led, {"n": n}) for n in (1, 2, 3, 4, 5)]


def test_a_thread_holding_commits_off_never_commits_from_add(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not rule 9's bound: a sleep overshooting it on a loaded machine made the second read late,
    # and a late read commits what waits (3 runs in 25 failed so on a busy 2-core machine).
    monkeypatch.setattr(groupcommit, "READ_RECORD_WAIT_S", 60.0)
    led, batch = _ledger(tmp_path)
    with batch._commit:
        assert led.admit(_read(1), []).allowed
        time.sleep(batch.window_s * INLINE_SHARE + 0.002)
        assert led.admit(_read(2), []).allowed  # due, but this thread holds commits off
        assert batch.pending() == 2
        assert _on_disk(tmp_path / "host.db") == []


def test_a_batch_appends_the_rows_one_append_at_a_time_would(tmp_path: Path) -> None:
    from host.ledger.audit import append_in
    from host.ledger.groupcommit import append_many_in
    from host.ledger.records import canonical_json, validated_body

    items = [(canonical_json({**validated_body(_read(n)), "kind": "decision", "allowed": True,
                              "code": "allow"}), T0 + n / 7) for n in range(50)]
    one, many = open_store(tmp_path / "one.db"), open_store(tmp_path / "many.db")
    for store in (one, many):
        AuditLog(store, ManualClock(T0))  # the schema
    with one.transaction() as c:
        for body, ts in items:
            append_in(c, body, ts)
    with many.transaction() as c:
        assert append_many_in(c, items[:20]) == (1, 20)
        assert append_many_in(c, items[20:]) == (21, 50)

    def rows(store: object) -> list[tuple[object, ...]]:
        return [tuple(r) for r in store.conn().execute(  # type: ignore[attr-defined]
            "SELECT seq, ts, body, prev_hash, hash FROM audit ORDER BY seq")]

    assert rows(one) == rows(many)
    walked = AuditLog(many, ManualClock(T0)).verify()  # no anchor here: the chain alone
    assert walked.records == 50 and walked.first_bad_seq is None


def test_a_call_whose_commit_fails_is_served_and_its_reads_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk during a caller's group commit fails neither the read nor loses a record:
    they wait for the flusher's retry or the next write (which then commits or is refused)."""
    import sqlite3
    import threading

    led, batch = _ledger(tmp_path)
    batch._thread = threading.current_thread()  # no flusher: only the caller commits
    real = batch.store.transaction

    def full() -> object:
        raise sqlite3.OperationalError("database or disk is full")

    assert led.admit(_read(1), []).allowed
    time.sleep(batch.window_s * INLINE_SHARE + 0.001)
    monkeypatch.setattr(batch.store, "transaction", full)
    assert led.admit(_read(2), []).allowed  # due; its commit fails; the read is served
    assert batch.pending() == 2
    monkeypatch.setattr(batch.store, "transaction", real)
    batch.flush()
    digests = [r["args_digest"] for r in _on_disk(tmp_path / "host.db")]
    assert digests == [_kept(led, {"n": 1}), _kept(led, {"n": 2})]


def test_no_read_is_served_past_the_rule_9_bound_while_the_group_commit_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule 9 lets a read's record wait at most 10 ms. While the store refuses every commit (a
    full disk, an unreachable store), a read held once that bound has passed for a waiting
    record would be served with no durable record, for as long as the failure lasts, and the
    batch would grow without limit (a crash loses them all). Past the bound, a read commits
    the waiting records on its own thread first, or is refused with the store's error and
    holds nothing; once the store writes again, reads are served and nothing held is lost."""
    led, batch = _ledger(tmp_path)
    batch._thread = threading.current_thread()  # no flusher: only the callers commit
    real = batch.store.transaction

    def full() -> object:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(batch.store, "transaction", full)
    assert led.admit(_read(1), []).allowed  # held within the bound: served, as before
    time.sleep(groupcommit.READ_RECORD_WAIT_S + 0.002)
    for n in range(2, 200):
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            led.admit(_read(n), [])
    assert batch.pending() == 1  # the refused reads hold nothing
    monkeypatch.setattr(batch.store, "transaction", real)
    assert led.admit(_read(200), []).allowed  # commits the late record first, then is held
    batch.flush()
    digests = [r["args_digest"] for r in _on_disk(tmp_path / "host.db")]
    assert digests == [_kept(led, {"n": 1}), _kept(led, {"n": 200})]


def test_the_flusher_outlives_an_error_it_did_not_expect(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flusher caught only the store's failures: anything else ended its thread (a driver's
    raw error during a store restart did), and the last reads before a quiet spell then waited
    for the next call or the close, past rule 9's bound, lost in a crash. It logs, keeps the
    records and tries again; here nothing else commits them."""
    led, batch = _ledger(tmp_path)
    real = groupcommit.append_many_in
    failed: list[int] = []

    def once(conn: Any, items: Any) -> tuple[int, int]:
        if not failed:
            failed.append(1)
            raise RuntimeError("not the store's kind of failure")
        return real(conn, items)

    monkeypatch.setattr(groupcommit, "append_many_in", once)
    assert led.admit(_read(1), []).allowed
    deadline = time.monotonic() + 10
    while not _on_disk(tmp_path / "host.db") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert failed == [1]
    assert [r["args_digest"] for r in _on_disk(tmp_path / "host.db")] == [_kept(led, {"n": 1})]
    assert batch._thread is not None and batch._thread.is_alive()
    led.close()


# ---- a rated read's outcome (the shipped baseline rates every call) ----------------------------

RATE = Charge("install:i1:rate", 3, 60.0, "install")


def _rated_read(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a1", install_id="i1", action="users.get",
                       op_id=op, rules=("permit.read",), policy_rev="r" * 64,
                       args_digest=digest_args({"op": op}), write=False)


def _intents_on_disk(db: Path) -> list[int]:
    store = open_store(db)
    try:
        return [int(r[0]) for r in store.conn().execute("SELECT seq FROM audit_intents")]
    finally:
        store.close()


def test_a_rated_reads_success_commits_with_the_next_admission(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    db = tmp_path / "host.db"
    with batch._commit:
        a = led.admit(_rated_read("r1"), [RATE])
        # The units and the decision are durable before the read is served, with its intent.
        assert a.allowed and [r["seq"] for r in _on_disk(db)] == [a.seq]
        led.hold_outcome(a.seq, "r1", "a1", "i1", "users.get")
        # The success waits; the intent stays until the outcome's own commit.
        assert [r["kind"] for r in _on_disk(db)] == ["decision"]
        assert _intents_on_disk(db) == [a.seq]
        w = led.admit(_write("w1"), [])
        disk = _on_disk(db)
        assert [(r["kind"], r.get("ref_seq")) for r in disk] == [
            ("decision", None), ("outcome", a.seq), ("decision", None)]
        assert isinstance(disk[1]["seq"], int) and disk[1]["seq"] < w.seq
        assert disk[1]["ok"] is True and disk[1]["refunded"] is False
        assert _intents_on_disk(db) == [w.seq]  # the read's intent went with its outcome
    assert led.quota_state(RATE.key, RATE.limit, RATE.window_s).used == 1  # a success keeps it
    led.close()
    assert AuditLog(open_store(db), ManualClock(T0)).verify().ok


def test_a_held_outcome_is_the_record_outcome_would_write(tmp_path: Path) -> None:
    held, _ = _ledger(tmp_path / "held")
    sync = Ledger(tmp_path / "sync.db", ManualClock(T0))
    for led in (held, sync):
        for op, route in (("r1", None), ("r2", "GET /api/v1/users.info")):
            a = led.admit(_rated_read(op), [RATE])
            status = 200 if route else None
            if led is held:
                led.hold_outcome(a.seq, op, "a1", "i1", "users.get", status=status, route=route)
            else:
                led.outcome(a.seq, op, True, None, False, status=status, route=route)
        led.close()
    held_rows = _on_disk(tmp_path / "held" / "host.db")
    sync_rows = _on_disk(tmp_path / "sync.db")
    assert [r["kind"] for r in held_rows] == ["decision", "outcome", "decision", "outcome"]
    for rows, led in ((held_rows, held), (sync_rows, sync)):  # each home keys its own digests
        assert [r.pop("args_digest", None) for r in rows] == [
            _kept(led, {"op": "r1"}), None, _kept(led, {"op": "r2"}), None]
    assert held_rows == sync_rows


def test_a_crash_before_a_rated_reads_outcome_keeps_its_units(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    db = tmp_path / "host.db"
    with batch._commit:
        a = led.admit(_rated_read("r1"), [RATE])
        led.hold_outcome(a.seq, "r1", "a1", "i1", "users.get")
        # The process dies here, the read served and its success not yet committed.
        _dies(batch)
        survivor = Ledger(db, ManualClock(T0))
        assert [i.op_id for i in survivor.pending_intents()] == ["r1"]
        # The server keeps no log of reads: "not applied" proves nothing; the unit stays.
        assert survivor.settle(lambda _op: False) == 1
    rows = _on_disk(db)
    assert rows[-1]["kind"] == "outcome" and rows[-1]["code"] == "outcome_unknown"
    assert rows[-1]["refunded"] is False and rows[-1]["reconciled"] is True
    assert survivor.quota_state(RATE.key, RATE.limit, RATE.window_s).used == 1
    assert survivor.pending_intents() == []
    survivor.close()


def test_only_a_ledger_that_group_commits_holds_an_outcome(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "host.db", ManualClock(T0))
    a = led.admit(_rated_read("r1"), [RATE])
    with pytest.raises(AuditError, match="not group-committed"):
        led.hold_outcome(a.seq, "r1", "a1", "i1", "users.get")
    led.close()


def _committed_within(db: Path, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(_on_disk(db)) >= count:
            return True
        time.sleep(0.002)
    return False


def test_the_flusher_goes_idle_and_the_next_record_still_wakes_it(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    db = tmp_path / "host.db"
    led.admit(_read(1), [])
    assert _committed_within(db, 1, 5)
    deadline = time.monotonic() + 5
    while not batch._idle and time.monotonic() < deadline:  # a quiet window: it sleeps
        time.sleep(0.002)
    assert batch._idle
    led.admit(_read(2), [])  # only this add can wake it: nothing else will commit the read
    assert _committed_within(db, 2, 5)
    led.close()


def test_a_stream_of_rated_reads_wakes_the_flusher_once_not_per_call(tmp_path: Path) -> None:
    led, batch = _ledger(tmp_path)
    wakes = []
    set_wake = batch._wake.set

    def counted() -> None:
        wakes.append(1)
        set_wake()
    batch._wake.set = counted  # type: ignore[method-assign]
    for n in range(50):
        # each admission commits the previous read's held success: the batch empties each time
        a = led.admit(_rated_read(f"r{n}"), [Charge("install:i1:rate", 100, 60.0, "install")])
        led.hold_outcome(a.seq, f"r{n}", "a1", "i1", "users.get")
    assert len(wakes) < 10  # was 50: one wake-up per call (~60 µs of the caller's CPU each)
    led.close()
    assert len(_on_disk(tmp_path / "host.db")) == 100


def test_a_transaction_reads_the_chain_head_once_and_the_chain_holds(tmp_path: Path) -> None:
    """Inside one write transaction no other connection can append, so the head a group commit
    wrote is the head its decision chains onto (`host.ledger.chainhead`): one head look-up, not
    one a record. The memo ends with the transaction: an append by another connection (the CLI)
    between two transactions, and a transaction that rolled back, leave a chain that verifies."""
    led, batch = _ledger(tmp_path)
    seen: list[str] = []
    with batch._commit:
        for n in range(3):
            led.admit(_read(n), [])
        conn = led.store.conn()
        conn.set_trace_callback(seen.append)
        try:
            w = led.admit(_write("op1"), [])  # three waiting reads, then the decision
        finally:
            conn.set_trace_callback(None)
        in_tx = seen[seen.index("BEGIN IMMEDIATE"):seen.index("COMMIT")]
        assert sum(s.startswith("INSERT INTO audit(") for s in in_tx) == 4
        assert [s for s in in_tx if "FROM audit ORDER BY seq DESC" in s] == [
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"]
        assert w.seq == 4

        # Another process appends between two of this host's transactions.
        other = AuditLog(open_store(tmp_path / "host.db"), ManualClock(T0))
        other.append(AuditRecord(kind="lifecycle", event="disable", app_id="a1"))
        other.store.close()
        led.admit(_read(9), [])
        led.outcome(w.seq, "op1", True, None, False)

        # A transaction that appends and then rolls back leaves no head behind it.
        def broken_counter(_pending: Sequence[str]) -> int:
            raise RuntimeError("server unreachable")
        led.admit(_read(10), [])
        with pytest.raises(RuntimeError):
            led.admit(_write("op2"), [], 10, broken_counter)
        led.admit(_write("op3"), [])
    led.close()
    disk = _on_disk(tmp_path / "host.db")
    assert [r["seq"] for r in disk] == list(range(1, 10))
    assert AuditLog(open_store(tmp_path / "host.db"), ManualClock(T0)).verify().ok


def test_a_full_disk_met_by_the_flusher_is_the_processs_one_line_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The flusher meeting a full disk says so in the process's one disk-full line (no
    traceback, no line per retry), and a bridge call refused by the same full disk right after
    adds no line of its own; the reads wait and commit once there is room."""
    import logging
    import sqlite3

    from host.store.diskfull import DiskFullNotice
    from host.supervise import disk_notice
    from sandbox.frames import Call

    notice = DiskFullNotice()  # this test's window, whatever other tests logged
    monkeypatch.setattr("host.ledger.groupcommit.disk_full_notice", notice)
    monkeypatch.setattr(disk_notice, "disk_full_notice", notice)
    led, batch = _ledger(tmp_path)
    real = batch.store.transaction

    def full() -> object:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(batch.store, "transaction", full)
    with caplog.at_level(logging.INFO):
        assert led.admit(_read(1), []).allowed
        deadline = time.monotonic() + 5
        while notice._next == 0.0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the flusher's first try, and a few retries after it
        time.sleep(0.3)
        disk_notice.disk_full_reply(Call(id=1, action="users.create", args={}))
    lines = [r for r in caplog.records if r.name.startswith("stockade")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "disk full" in lines[0].getMessage() and "group commit" in lines[0].getMessage()
    assert lines[0].exc_info is None
    monkeypatch.setattr(batch.store, "transaction", real)
    batch.flush()
    assert [r["args_digest"] for r in _on_disk(tmp_path / "host.db")] == [_kept(led, {"n": 1})]
    led.close()


def test_a_held_refusal_refunds_with_its_record_before_the_next_admission(
        tmp_path: Path) -> None:
    """A refused call's outcome may wait too (`hold_refusal`), but its refund commits with its
    record, inside the next commit on the log: the next admission's quota check already sees
    the unit back, so no call of this host is ever refused for a unit that was refunded."""
    led, batch = _ledger(tmp_path)
    db = tmp_path / "host.db"
    one = Charge("install:i1:create", 1, 60.0, "install")
    with batch._commit:  # the flusher cannot commit: only the next admission can
        a = led.admit(_write("w1"), [one])
        led.hold_refusal(a.seq, "w1", "conflict", True)
        assert [r["kind"] for r in _on_disk(db)] == ["decision"]  # still waiting
        b = led.admit(_write("w2"), [one])  # the limit is 1: allowed only if w1's unit is back
    assert b.allowed
    rows = _on_disk(db)
    assert [(r["kind"], r.get("code")) for r in rows] == [
        ("decision", "allow"), ("outcome", "conflict"), ("decision", "allow")]
    assert rows[1]["refunded"] is True and rows[1]["ref_seq"] == a.seq
    assert rows[1]["app_id"] == "a1" and rows[1]["action"] == "users.create"
    assert [i.op_id for i in led.pending_intents()] == ["w2"]
    assert led.audit.verify().ok
    led.close()


def test_the_quota_and_seats_this_host_shows_count_a_held_refund(tmp_path: Path) -> None:
    """What the host shows of a quota (the demo, the console) is what its next admission would
    see: a refund still waiting for the group commit counts as given back."""
    led, batch = _ledger(tmp_path)
    one = Charge("install:i1:create", 1, 60.0, "install")
    def pending_seats(pending: Sequence[str]) -> int:
        return len(pending)  # no user created yet: each pending creation holds its seat

    with batch._commit:  # the flusher cannot commit it first
        a = led.admit(_write("w1"), [one], 10, pending_seats)
        assert led.quota_state(one.key, one.limit, one.window_s).used == 1
        assert led.seats_in_use(pending_seats) == 1
        led.hold_refusal(a.seq, "w1", "conflict", True)
        assert led.quota_state(one.key, one.limit, one.window_s).used == 0
        assert led.seats_in_use(pending_seats) == 0
    led.close()


@pytest.mark.parametrize(("record", "settled", "units"), [
    (_write, ("not_applied", True), 0),  # the server's op log: never applied, refunded
    (_rated_read, ("outcome_unknown", False), 1),  # a read: kept, stricter than its refund
], ids=["write", "read"])
def test_a_crash_before_a_held_refusal_commits_never_loosens_the_quota(
        tmp_path: Path, record: Any, settled: tuple[str, bool], units: int) -> None:
    led, batch = _ledger(tmp_path)
    with batch._commit:
        a = led.admit(record("x1"), [RATE])
        led.hold_refusal(a.seq, "x1", "not_found", True)
        # The process dies here, the refusal and its refund not yet committed.
        _dies(batch)
        survivor = Ledger(tmp_path / "host.db", ManualClock(T0))
        assert survivor.settle(lambda _op: False) == 1
    last = _on_disk(tmp_path / "host.db")[-1]
    assert (last["code"], last["refunded"], last["reconciled"]) == (*settled, True)
    assert survivor.quota_state(RATE.key, RATE.limit, RATE.window_s).used == units
    survivor.close()


def test_held_work_that_cannot_be_recorded_does_not_block_later_commits(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A held refusal that fails for a reason other than the store's (here: an op_id that is
    not its decision's) is undone and dropped, its intent left for settlement; the records
    around it and the write that met it commit, and that write's caller never sees the error
    (it is not that call's)."""
    led, batch = _ledger(tmp_path)
    with batch._commit:  # the flusher cannot commit: the write below meets the bad work
        a = led.admit(_write("w1"), [RATE])
        led.hold_refusal(a.seq, "not-w1", "conflict", True)
        led.admit(_read(1), [])
        assert led.admit(_write("w2"), [RATE]).allowed
        assert "could not be recorded" in caplog.text
        assert batch.pending() == 0
        assert led.admit(_write("w3"), [RATE]).allowed
    kinds = [(r["kind"], r.get("action"), r.get("op_id"))
             for r in _on_disk(tmp_path / "host.db")]
    assert kinds == [("decision", "users.create", "w1"), ("decision", "users.get", None),
                     ("decision", "users.create", "w2"), ("decision", "users.create", "w3")]
    assert sorted(i.op_id for i in led.pending_intents()) == ["w1", "w2", "w3"]
    # Nothing of the dropped work stayed: w1's unit is still taken (no refund committed).
    assert led.quota_state(RATE.key, RATE.limit, RATE.window_s).used == 3
    assert led.audit.verify().ok
    led.close()


def test_the_flusher_outlives_held_work_that_cannot_be_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The flusher meets the bad work alone: it drops it and keeps committing reads within the
    window (DESIGN rule 9), rather than dying and leaving a lone read to the next write."""
    led, batch = _ledger(tmp_path)
    a = led.admit(_write("w1"), [RATE])
    led.hold_refusal(a.seq, "not-w1", "conflict", True)
    deadline = time.monotonic() + 5
    while "could not be recorded" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "could not be recorded" in caplog.text
    led.admit(_read(1), [])
    while batch.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batch._thread is not None and batch._thread.is_alive()
    assert [r.get("action") for r in _on_disk(tmp_path / "host.db")] == [
        "users.create", "users.get"]
    led.close()


def test_held_work_that_breaks_a_constraint_is_undone_and_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A constraint the work breaks would break again at every retry: like a non-store failure,
    the work is rolled back to its savepoint (what it wrote before failing is undone) and
    dropped, and the write that met it commits."""
    led, batch = _ledger(tmp_path)

    def breaks(c: Any) -> int:
        c.execute("DELETE FROM audit_intents")  # written, then undone with the work
        raise sqlite3.IntegrityError("a constraint this work breaks every time")
    with batch._commit:
        led.admit(_write("w1"), [RATE])
        batch.defer(breaks)
        assert led.admit(_write("w2"), [RATE]).allowed
    assert "could not be recorded" in caplog.text
    assert batch.pending() == 0
    assert sorted(i.op_id for i in led.pending_intents()) == ["w1", "w2"]
    led.close()


def test_held_work_that_fails_after_appending_leaves_the_chain_whole(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Work that appended a record and then failed is rolled back with its record; the next
    record in the same transaction chains onto the head the table holds, not the one undone."""
    led, batch = _ledger(tmp_path)

    def appends_then_fails(c: Any) -> int:
        append_in(c, json.dumps({"kind": "note", "app_id": "a1"}), T0)
        raise ValueError("failed after its append")
    with batch._commit:
        led.admit(_write("w1"), [RATE])
        batch.defer(appends_then_fails)
        assert led.admit(_write("w2"), [RATE]).allowed
    assert "could not be recorded" in caplog.text
    assert [r["op_id"] for r in _on_disk(tmp_path / "host.db")] == ["w1", "w2"]
    assert led.audit.verify().ok
    led.close()


def test_a_commit_whose_answer_is_lost_is_not_written_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group commit whose COMMIT went through but whose answer was lost (a PostgreSQL
    connection cut during COMMIT; here the store raises right after committing) put its
    records back and wrote them again at the next commit: two outcome records for one call,
    and every held read twice. The batch now asks the store whether its last record is there."""
    import contextlib
    import sqlite3
    import threading
    from collections.abc import Iterator

    led, batch = _ledger(tmp_path)
    batch._thread = threading.current_thread()  # no flusher: only this thread commits
    db = tmp_path / "host.db"
    real = batch.store.transaction

    @contextlib.contextmanager
    def answer_lost() -> Iterator[object]:
        with real() as c:
            yield c
        raise sqlite3.OperationalError("disk I/O error")  # committed; the answer is lost

    a = led.admit(_rated_read("r1"), [RATE])
    led.hold_outcome(a.seq, "r1", "a1", "i1", "users.get")
    assert led.admit(_read(7), []).allowed  # a held read's record
    monkeypatch.setattr(batch.store, "transaction", answer_lost)
    try:
        batch.flush()
        raised = False
    except sqlite3.OperationalError:
        raised = True
    monkeypatch.setattr(batch.store, "transaction", real)
    led.admit(_write("w1"), [])
    batch._thread = None
    led.close()
    disk = _on_disk(db)
    assert [r.get("ref_seq") for r in disk if r["kind"] == "outcome"] == [a.seq]
    assert [r.get("args_digest") for r in disk].count(_kept(led, {"n": 7})) == 1
    assert _intents_on_disk(db) == [disk[-1]["seq"]]  # only the write's
    assert AuditLog(open_store(db), ManualClock(T0)).verify().ok
    assert not raised  # committed: not reported as a failure


def test_a_commit_that_failed_keeps_its_records_for_the_next_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side of the question: a COMMIT that did not go through is retried whole."""
    import contextlib
    import sqlite3
    import threading
    from collections.abc import Iterator

    led, batch = _ledger(tmp_path)
    batch._thread = threading.current_thread()
    real = batch.store.transaction

    @contextlib.contextmanager
    def rolled_back() -> Iterator[object]:
        with real() as c:
            yield c
            raise sqlite3.OperationalError("disk I/O error")  # inside: rolled back

    a = led.admit(_rated_read("r1"), [RATE])
    led.hold_outcome(a.seq, "r1", "a1", "i1", "users.get")
    monkeypatch.setattr(batch.store, "transaction", rolled_back)
    with pytest.raises(sqlite3.OperationalError):
        batch.flush()
    monkeypatch.setattr(batch.store, "transaction", real)
    assert batch.pending() == 1
    batch.flush()
    batch._thread = None
    led.close()
    disk = _on_disk(tmp_path / "host.db")
    assert [r.get("ref_seq") for r in disk if r["kind"] == "outcome"] == [a.seq]
    assert _intents_on_disk(tmp_path / "host.db") == []


def test_the_flusher_outlives_a_store_it_cannot_reach(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store down while the flusher commits raises the store's own `StoreError` ("cannot
    reach the store", a PostgreSQL restart): the flusher thread ended on it, and reads' records
    then waited for the next write however long (seen in a restart review). It retries now, and
    commits them once the store answers."""
    from host.store import StoreError

    led, batch = _ledger(tmp_path)
    real = batch.store.transaction
    down = threading.Event()
    down.set()

    def flaky() -> object:
        if down.is_set():
            raise StoreError("cannot reach the store")
        return real()

    monkeypatch.setattr(batch.store, "transaction", flaky)
    assert led.admit(_read(1), []).allowed
    time.sleep(0.3)  # the flusher's first tries meet the store down
    assert batch._thread is not None and batch._thread.is_alive()
    down.clear()
    deadline = time.monotonic() + 5
    while batch.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r["args_digest"] for r in _on_disk(tmp_path / "host.db")] == [_kept(led, {"n": 1})]
    led.close()
