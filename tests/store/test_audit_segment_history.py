"""The records before the break a segment acknowledged are pinned by the segment itself.

A segment record (`--degraded`) promises that the history before it cannot be deleted, cut or
re-hashed afterwards (SECURITY.md). Its old head pins the end of the old chain, but nothing
pinned the records before the break: re-hashing records 1..ref-1 (knowing the keyless scheme)
only moved the old chain's first problem from "record ref edited" to "record ref's prev_hash
does not match", at the same seq, and `verify` said ok with the forged history in it. The
segment now records the old chain's last record that verified (`good_seq`, `good_hash`), and
`verify` holds the rows before the segment to it.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from host.ledger.audit import GENESIS_HASH, chain_hash
from tests.store.test_audit_segments import _edit_r6, _log, _raw, _segmented


def _rehash(c: sqlite3.Connection, upto: int, edit: Callable[[str], str]) -> None:
    """Edit bodies of records 1..upto and recompute their hashes, leaving the rest alone."""
    rows = c.execute("SELECT seq, ts, body FROM audit WHERE seq <= ? ORDER BY seq",
                     (upto,)).fetchall()
    prev = GENESIS_HASH
    for seq, ts, body in rows:
        body = edit(body)
        h = chain_hash(prev, seq, ts, body)
        c.execute("UPDATE audit SET body=?, prev_hash=?, hash=? WHERE seq=?",
                  (body, prev, h, seq))
        prev = h


@pytest.mark.parametrize("breaker, last_good", [
    (_edit_r6, 6),  # record 7 edited
    (lambda c: c.execute("DELETE FROM audit WHERE seq = 4"), 3),  # a gap at 4
], ids=["edit", "gap"])
def test_re_hashing_the_records_before_the_acknowledged_break_fails_verify(
        tmp_path: Path, breaker: Callable[[sqlite3.Connection], None], last_good: int) -> None:
    seg = _segmented(tmp_path, breaker)
    _rehash(_raw(tmp_path), last_good, lambda b: b.replace('"r2"', '"FORGED"'))
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == seg, res
    assert "NOT as acknowledged" in res.breaks[0], res


def test_the_segment_records_the_last_record_that_verified(tmp_path: Path) -> None:
    seg = _segmented(tmp_path, _edit_r6)
    log = _log(tmp_path)
    body = log.show(seg)
    assert body is not None
    six = log.show(6)
    assert six is not None
    assert (body.body["good_seq"], body.body["good_hash"]) == (6, six.hash)
