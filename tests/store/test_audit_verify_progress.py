"""`audit verify` says how far it is on a long chain: the whole walk of ten million records
takes about a minute, and the command printed nothing until it was done. `AuditLog.verify`
reports the records walked every `every` records to a callback, which the CLI prints to
stderr (never to `--json`'s stdout)."""
from __future__ import annotations

from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, append_in

T0 = 1_700_000_000.0


def test_verify_reports_its_progress(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    body = AuditRecord(kind="supervisor", event="test", detail="r").body()
    with log.transaction() as c:
        for i in range(350):
            append_in(c, body, T0 + i)
    log.close()
    seen: list[tuple[int, int]] = []
    res = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True).verify(
        progress=lambda done, total: seen.append((done, total)), every=100)
    assert seen == [(100, 350), (200, 350), (300, 350)]
    assert res.records == 350 and res.first_bad_seq is None
