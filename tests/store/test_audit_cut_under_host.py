"""Records a serving host wrote, cut from under it, stay detected however many follow.

The anchor lags the head by at most `anchor_every` records, the window in which the newest
records can be cut unseen. But once records this process had written were cut, every later
anchoring found the chain not descending from them and left the anchor where it was (one log
line), while the host kept appending: from then on any number of records could be cut and
`audit verify` still passed. Now such an anchoring pins the newest record this process wrote
(never one it did not check), so `verify` names the loss.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, open_readonly

T0 = 1_700_000_000.0


def _append(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))


def _cut_after(home: Path, seq: int) -> None:
    c = sqlite3.connect(home / "host.db", isolation_level=None)
    for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                             " AND tbl_name = 'audit'").fetchall():
        c.execute(f"DROP TRIGGER {name}")
    c.execute("DELETE FROM audit WHERE seq > ?", (seq,))
    c.close()


def test_records_cut_under_a_serving_host_are_named_by_verify(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0), anchor_every=4)
    try:
        _append(log, 6)  # anchored at 4; 5 and 6 not yet
        _cut_after(tmp_path, 4)
        _append(log, 10)  # seq 5..14 written again after the cut; the anchorings at 8 and 12
        _cut_after(tmp_path, 4)  # the attacker cuts all ten, then stops the host
    finally:
        log.close()
    log = open_readonly(tmp_path / "host.db", ManualClock(T0))
    try:
        res = log.verify()
    finally:
        log.close()
    assert not res.ok and res.first_bad_seq == 5, res
