"""A `--degraded` start can begin a new segment whatever the broken chain's newest row holds.

The segment records the old head's hash, which the record's allow-list holds to 64 hex
characters: a newest row whose stored hash is anything else (written by hand into host.db)
made `start_segment` fail with "head_hash must be 64 lowercase hex characters", so the
documented recovery (`serve --degraded`) refused to start for good. The old head is then
recorded by its seq alone; the rows before the segment stay pinned by `rest_digest`.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord

T0 = 1_700_000_000.0


def test_a_segment_starts_after_a_row_whose_hash_is_no_hash(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    for i in range(3):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    c.execute("INSERT INTO audit VALUES(4, ?, '{}', 'x', 'not a hash')", (T0,))
    c.close()
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    broken = log.verify()
    assert not broken.ok
    seg = log.start_segment(broken, actor="op")
    log.append(AuditRecord(kind="supervisor", event="test", detail="after"))
    res = log.verify()
    assert res.ok and len(res.breaks) == 1, res
    log.close()
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    c.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    c.execute("DELETE FROM audit WHERE seq = 4")  # the history is still pinned
    c.close()
    res = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True).verify()
    assert not res.ok and res.first_bad_seq == seg, res
