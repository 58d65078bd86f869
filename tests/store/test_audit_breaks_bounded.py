"""`verify` keeps at most MAX_BREAKS earlier segments' lines (and counts the rest).

Each segment record starts a line in `breaks`, which `verify` prints and `--json` lists. A
segment record needs no key (its prev_hash is genesis), so anyone who can write host.db could
append a million of them: a million lines held in memory and printed. Every segment is still
walked and checked; only the lines past the first MAX_BREAKS are summed up in one.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import GENESIS_HASH, AuditLog, AuditRecord, chain_hash
from host.ledger.verify import MAX_BREAKS

T0 = 1_700_000_000.0


def test_a_flood_of_segment_records_gives_a_bounded_verdict(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    log.append(AuditRecord(kind="supervisor", event="test", detail="r"))
    log.close()
    body = AuditRecord(kind="segment", event="chain_break", actor="x").body()
    flood = MAX_BREAKS * 5
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    c.executemany("INSERT INTO audit VALUES(?, ?, ?, ?, ?)",
                  [(seq, T0, body, GENESIS_HASH, chain_hash(GENESIS_HASH, seq, T0, body))
                   for seq in range(2, 2 + flood)])
    c.close()
    res = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True).verify()
    assert not res.ok  # the anchor (seq 1) is no longer in the newest segment
    assert len(res.breaks) == MAX_BREAKS + 1, len(res.breaks)
    assert f"{flood - MAX_BREAKS} more" in res.breaks[-1], res.breaks[-1]
