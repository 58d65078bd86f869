"""A record's timestamp is a time a host clock gives: `verify` refuses any other.

The walk checked only that a stored `ts` was a float, so a row appended (hash recomputed, the
chain's hash is keyless) with `ts` = inf or 1e300 verified, and every reading tool that shows
the time (`audit tail`, `audit show`, the console's page) then met a value no date has; the
console's search also stops at the first record older than `since`, assuming time order.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, chain_hash

T0 = 1_700_000_000.0
BODY = '{"detail":"x","event":"test","kind":"supervisor"}'


@pytest.mark.parametrize("ts", [float("inf"), float("-inf"), 1e300, -1.0, 253402300800.0])
def test_a_timestamp_no_clock_gives_is_a_bad_record(tmp_path: Path, ts: float) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    for i in range(3):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    seq, h = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)",
              (seq + 1, ts, BODY, h, chain_hash(h, seq + 1, ts, BODY)))
    c.close()
    res = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True).verify()
    assert not res.ok and res.first_bad_seq == 4 and "time" in (res.problem or ""), res


def test_the_last_second_a_date_can_show_still_verifies(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(253402300799.0))
    log.append(AuditRecord(kind="supervisor", event="test", detail="late"))
    assert log.verify().ok
    log.close()
