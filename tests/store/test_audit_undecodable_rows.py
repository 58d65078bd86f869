"""A row whose text is not UTF-8 never stops a reader of the audit chain (`host/ledger/auditrows.py`).

Someone who can write host.db can store any bytes in a TEXT column (`CAST(x'ff' AS TEXT)`), and
Python's sqlite3 raises when it fetches such a row. One such byte, in the tail after the anchor
or in an anchored record, made `audit verify` give no verdict ("cannot read the audit log ...
check the file's permissions"), `audit tail` and `audit show` show nothing, and a host's start
fail with "unexpected OperationalError", `--degraded` too: the documented recovery could not
run. Now the row is a bad record like any other: `verify` names it, the reading tools show it
as no valid record, a start is refused naming it and `--degraded` starts a new segment.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, open_readonly

T0 = 1_700_000_000.0
# Each column a forger can fill with bytes that are no UTF-8 (a terminal escape among them).
EDITS = {
    "body": "body = CAST(CAST(body AS BLOB) || x'1b5b324aff' AS TEXT)",
    "hash": "hash = CAST(x'ff' AS TEXT)",
    "prev_hash": "prev_hash = CAST(x'c3' AS TEXT)",
    "ts": "ts = CAST(x'ff' AS TEXT)",
}


def _chain(home: Path, n: int = 6) -> None:
    log = AuditLog(home / "host.db", ManualClock(T0), anchor_every=4)
    for i in range(n):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()


def _edit(home: Path, seq: int, assignment: str) -> None:
    c = sqlite3.connect(home / "host.db", isolation_level=None)
    c.execute("DROP TRIGGER audit_no_update")
    c.execute(f"UPDATE audit SET {assignment} WHERE seq = ?", (seq,))
    c.close()


@pytest.mark.parametrize("seq", [2, 6], ids=["anchored", "tail"])
@pytest.mark.parametrize("column", list(EDITS))
def test_verify_names_a_row_that_is_not_utf8_and_tail_and_show_show_it(
        tmp_path: Path, column: str, seq: int) -> None:
    _chain(tmp_path)
    _edit(tmp_path, seq, EDITS[column])
    log = open_readonly(tmp_path / "host.db", ManualClock(T0))
    try:
        res = log.verify(progress=lambda done, total: None)
        entries = log.tail(10)
        shown = log.show(seq)
    finally:
        log.close()
    assert not res.ok and res.first_bad_seq == seq, res
    assert [e.seq for e in entries] == list(range(1, 7))
    assert shown is not None and shown.invalid is not None
    assert [e.seq for e in entries if e.invalid] == [seq]


def test_a_start_names_the_row_and_degraded_starts_a_new_segment(tmp_path: Path) -> None:
    _chain(tmp_path)
    _edit(tmp_path, 6, EDITS["body"])
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    try:
        res = log.verify()
        assert not res.ok and res.first_bad_seq == 6
        seq = log.start_segment(res, actor="op")  # what `serve --degraded` does with it
    finally:
        log.close()
    log = open_readonly(tmp_path / "host.db", ManualClock(T0))
    try:
        after = log.verify()
    finally:
        log.close()
    assert seq == 7 and after.ok and "record 6" in after.breaks[0], after


def _untyped_seq(home: Path, value: str) -> None:
    """The table made again with an untyped `seq`, record 3's set to `value`."""
    _chain(home)
    c = sqlite3.connect(home / "host.db", isolation_level=None)
    c.executescript(
        "DROP TRIGGER audit_no_update; CREATE TABLE forged(seq, ts REAL, body TEXT,"
        " prev_hash TEXT, hash TEXT); INSERT INTO forged SELECT * FROM audit; DROP TABLE audit;"
        f" ALTER TABLE forged RENAME TO audit; UPDATE audit SET seq = {value} WHERE seq = 3;")
    c.close()


@pytest.mark.parametrize("value", ["'3'", "x'03'", "NULL", "9e999"])
def test_a_seq_that_is_no_integer_is_a_bad_record_not_a_crash(tmp_path: Path, value: str) -> None:
    """The table made again with an untyped `seq` (what a writer of host.db can do): a row whose
    seq is text, bytes or NULL raised TypeError out of `verify` (and so out of a
    start, `--degraded` too), and one that is infinite OverflowError out of `tail`."""
    _untyped_seq(tmp_path, value)
    log = open_readonly(tmp_path / "host.db", ManualClock(T0))
    try:
        res = log.verify()
        entries = log.tail(10)
    finally:
        log.close()
    assert not res.ok and res.problem is not None and res.first_bad_seq in (1, 3), res
    assert len(entries) == 6


@pytest.mark.parametrize("value", ["'3'", "x'03'"])
def test_degraded_starts_a_segment_after_a_row_whose_seq_is_no_integer(
        tmp_path: Path, value: str) -> None:
    """Such a row sorts after every integer: taken as the head, its seq made the segment's
    `head_seq` no integer and `start_segment` raised, so `--degraded` could not start."""
    _untyped_seq(tmp_path, value)
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    try:
        seq = log.start_segment(log.verify(), actor="op")
    finally:
        log.close()
    log = open_readonly(tmp_path / "host.db", ManualClock(T0))
    try:
        after = log.verify()
    finally:
        log.close()
    # The segment follows the newest record; the stray row, sorted after it, is still named.
    assert seq == 7 and after.first_bad_seq == 8 and "no integer" in str(after.problem), after
