"""`audit verify` says how far it is on a long chain: the whole walk of ten million records
takes about a minute, and the command printed nothing until it was done. `AuditLog.verify`
reports the records walked every `every` records to a callback, which the CLI prints to
stderr (never to `--json`'s stdout)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from host import runtime
from host.clock import ManualClock
from host.home import Home
from host.ledger.audit import AuditLog, AuditRecord, append_in
from host.runtime import Host, HostConfig

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


def test_a_hosts_start_says_how_far_its_chain_walk_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`serve` walks the whole chain before it serves (`Host._check_chain`): a long chain was a
    silent start of a minute or more; now a line every `START_PROGRESS_EVERY` records."""
    home = Home(tmp_path / "home").ensure()
    log = AuditLog(home.host_store, ManualClock(T0))
    body = AuditRecord(kind="supervisor", event="test", detail="r").body()
    with log.transaction() as c:
        for i in range(250):
            append_in(c, body, T0 + i)
    log.close()
    monkeypatch.setattr(runtime, "START_PROGRESS_EVERY", 100)
    with caplog.at_level(logging.WARNING, logger="stockade.host"), \
            Host(home, config=HostConfig(watch=False)):
        pass
    said = [r.getMessage() for r in caplog.records if "before serving" in r.getMessage()]
    # 250 and the few records the home's set-up appended itself
    total = int(said[0].split(" of ")[1].split()[0]) if said else 0
    assert total >= 250 and said == [
        f"verifying the audit chain before serving: {n} of {total} records" for n in (100, 200)]
