"""The anchor pins the newest segment: a segment record appended by someone else is a failure.

A segment record needs no key (its prev_hash is genesis). `verify` took the anchor as
satisfied when the anchored record verified in *any* segment, so appending one keyless segment
record after the anchored head made `verify` report "intact in its newest segment" (exit 0)
over a newest segment nothing pins; a `serve` then trusted that head and re-signed the anchor
over it, and operator commands (which walk from the anchor) refused the same chain. A
`--degraded` start moves the anchor into the segment it writes, so the anchor is always in the
newest segment of a chain this host wrote.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import GENESIS_HASH, AuditLog, AuditRecord, chain_hash

T0 = 1_700_000_000.0


def test_a_segment_record_appended_after_the_anchor_fails_verify(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    for i in range(5):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()  # anchored at seq 5
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    rows = [AuditRecord(kind="segment", event="chain_break", actor="x").body(),
            AuditRecord(kind="operator.enable", actor="root", app_id="a",
                        install_id="i1").body()]
    seg = chain_hash(GENESIS_HASH, 6, T0, rows[0])
    c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)", (6, T0, rows[0], GENESIS_HASH, seg))
    c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)",
              (7, T0, rows[1], seg, chain_hash(seg, 7, T0, rows[1])))
    c.close()
    res = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True).verify()
    assert not res.ok and res.first_bad_seq == 6, res
    assert "newest segment" in (res.problem or ""), res
