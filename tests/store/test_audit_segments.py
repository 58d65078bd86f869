"""Segments of the chain (a `--degraded` start): the history before a segment stays pinned.

A segment record starts a new chain (prev_hash = genesis) after a break an operator
acknowledged. It records where the old chain broke (`ref_seq`) and the old head it broke from;
`verify` checks the rows before it against both, so that history can be neither deleted nor
rewritten afterwards while the newest segment still verifies.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import GENESIS_HASH, AuditLog, AuditRecord, chain_hash

T0 = 1_700_000_000.0


def _log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "host.db", ManualClock(T0), anchor_every=4)


def _fill(log: AuditLog, n: int, tag: str = "r") -> None:
    for i in range(n):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"{tag}{i}"))


def _raw(tmp_path: Path) -> sqlite3.Connection:
    """Someone with write access to host.db (not the anchor's key)."""
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    c.execute("DROP TRIGGER IF EXISTS audit_no_update")
    c.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    return c


def _segmented(tmp_path: Path, breaker: Callable[[sqlite3.Connection], None]) -> int:
    """10 records, broken by `breaker`, then a --degraded segment and 3 records after it.
    Returns the segment's seq."""
    log = _log(tmp_path)
    _fill(log, 10)
    breaker(_raw(tmp_path))
    broken = log.verify()
    assert not broken.ok
    seg = log.start_segment(broken, actor="op")
    _fill(log, 3, "after")
    res = log.verify()
    assert res.ok and len(res.breaks) == 1, res
    log.close()
    return seg


def _edit_r6(c: sqlite3.Connection) -> None:
    c.execute("UPDATE audit SET body=replace(body, '\"r6\"', '\"rX\"') WHERE seq=7")


def _rehash_before(c: sqlite3.Connection, seg: int, edit: Callable[[int, str], str]) -> None:
    """Edit bodies before `seg` and recompute every hash up to it (knowing the scheme)."""
    rows = c.execute("SELECT seq, ts, body FROM audit WHERE seq < ? ORDER BY seq",
                     (seg,)).fetchall()
    prev = GENESIS_HASH
    for seq, ts, body in rows:
        body = edit(seq, body)
        h = chain_hash(prev, seq, ts, body)
        c.execute("UPDATE audit SET body=?, prev_hash=?, hash=? WHERE seq=?",
                  (body, prev, h, seq))
        prev = h


def test_deleting_the_history_before_a_segment_fails_verify(tmp_path: Path) -> None:
    seg = _segmented(tmp_path, _edit_r6)
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq < ?", (seg,))
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == seg, res
    assert "old head" in (res.problem or "")
    assert "verified" not in res.breaks[0] and "NOT as acknowledged" in res.breaks[0]


def test_cutting_the_newest_records_before_a_segment_fails_verify(tmp_path: Path) -> None:
    seg = _segmented(tmp_path, _edit_r6)
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq BETWEEN 9 AND ?", (seg - 1,))
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == seg and "old head" in (res.problem or ""), res


def test_rewriting_the_history_before_a_segment_fails_verify(tmp_path: Path) -> None:
    seg = _segmented(tmp_path, _edit_r6)
    # Re-hash the whole old segment: its own break is gone, but its head is not the one the
    # segment recorded.
    _rehash_before(_raw(tmp_path), seg, lambda _s, b: b.replace('"r2"', '"rY"'))
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == seg, res


def test_deleting_a_record_before_the_acknowledged_break_fails_verify(tmp_path: Path) -> None:
    seg = _segmented(tmp_path, _edit_r6)
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq = 3")  # before record 7, the break
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == 3 and str(seg) in (res.problem or ""), res


@pytest.mark.parametrize("breaker", [
    _edit_r6,
    lambda c: c.execute("DELETE FROM audit WHERE seq = 4"),  # a gap in the old chain
    lambda c: c.execute("DELETE FROM audit WHERE seq > 6"),  # cut below the anchor (seq 8)
    lambda c: c.execute("DELETE FROM audit"),  # everything, the anchor left
], ids=["edit", "gap", "cut", "emptied"])
def test_what_a_segment_acknowledged_still_verifies(
        tmp_path: Path, breaker: Callable[[sqlite3.Connection], None]) -> None:
    _segmented(tmp_path, breaker)
    res = _log(tmp_path).verify()
    assert res.ok and len(res.breaks) == 1, res


def test_a_segment_that_names_its_old_head_only_in_its_detail_is_checked_too(
        tmp_path: Path) -> None:
    """Segments written before the old head had fields of its own: read from the detail."""
    log = _log(tmp_path)
    _fill(log, 10)
    _edit_r6(_raw(tmp_path))
    head = log.head()
    body = AuditRecord(kind="segment", event="chain_break", actor="op", ref_seq=7,
                       detail=("chain broken at record 7: hash does not match the record's "
                               f"content (record edited); old head seq {head[0]} hash "
                               f"{head[1]}")).body()
    digest = chain_hash(GENESIS_HASH, 11, T0, body)
    with log.transaction() as c:
        c.execute("INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)",
                  (11, T0, body, GENESIS_HASH, digest))
    log.trusted.verified((11, digest), restart=True)  # as `start_segment` does
    log.write_anchor(force=True)
    res = log.verify()
    assert res.ok and len(res.breaks) == 1, res
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq < 11")
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == 11, res
