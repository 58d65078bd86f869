"""The records between the acknowledged break and the old head are pinned by the segment too.

A segment pinned the old chain's last good record and its head, but not the rows in between:
after a `--degraded` start acknowledging one edited record (seq 7 of 10), deleting records 8
and 9, or rewriting them, left `verify` passing (the old chain still broke at 7 and still ended
at 10). Those rows were the host's own records written after the break. The segment now
records a digest of every row after the last good one (`rest_digest`), and `verify` holds the
rows before the segment to it.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.store.test_audit_segments import _edit_r6, _log, _raw, _segmented


@pytest.mark.parametrize("change", [
    lambda c: c.execute("DELETE FROM audit WHERE seq IN (8, 9)"),
    lambda c: c.execute("UPDATE audit SET body=replace(body, '\"r8\"', '\"rZ\"') WHERE seq=9"),
    lambda c: c.execute("UPDATE audit SET ts = ts + 1 WHERE seq = 7"),
], ids=["delete", "edit", "edit-the-break"])
def test_changing_the_rows_after_the_acknowledged_break_fails_verify(
        tmp_path: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    seg = _segmented(tmp_path, _edit_r6)
    change(_raw(tmp_path))
    res = _log(tmp_path).verify()
    assert not res.ok and res.first_bad_seq == seg, res
    assert "NOT as acknowledged" in res.breaks[0], res


@pytest.mark.parametrize("breaker", [
    _edit_r6,
    lambda c: c.execute("DELETE FROM audit WHERE seq = 4"),
    lambda c: c.execute("DELETE FROM audit WHERE seq > 6"),
    lambda c: c.execute("DELETE FROM audit"),
], ids=["edit", "gap", "cut", "emptied"])
def test_the_segment_pins_the_rest_and_still_verifies(
        tmp_path: Path, breaker: Callable[[sqlite3.Connection], None]) -> None:
    seg = _segmented(tmp_path, breaker)
    log = _log(tmp_path)
    entry = log.show(seg)
    assert entry is not None and len(entry.body["rest_digest"]) == 64
    res = log.verify()
    assert res.ok and "NOT" not in res.breaks[0], res
