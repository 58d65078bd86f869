"""The audit anchor: what moves it, what may not, and what a damaged or missing one means.

Each test here attacks the anchor the way someone with write access to the home's files (not
the anchor's key) could, and checks the chain's one witness outside `host.db` is not lost.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord, open_readonly
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.store import open_store

T0 = 1_700_000_000.0
CREATE = Charge("app:a:users.create", 100, 3600.0)


def _ledger(tmp_path: Path, every: int = 2) -> Ledger:
    return Ledger(tmp_path / "host.db", ManualClock(T0), anchor_path=tmp_path / "audit.anchor",
                  key_path=tmp_path / "keys" / "audit-anchor.key", anchor_every=every)


def _create(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def test_a_damaged_anchor_never_fails_an_append_after_its_commit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An append whose transaction committed returns normally even when the anchor file is
    damaged (a bad sector, a stray edit): raising there refused a call whose decision, unit
    and intent were already durable. The damage is logged once and `verify` reports it."""
    led = _ledger(tmp_path)
    led.append(AuditRecord(kind="supervisor", event="x"))  # seq 1, anchored
    (tmp_path / "audit.anchor").write_text("garbage\n")
    with caplog.at_level(logging.WARNING, logger="stockade"):
        adm = led.admit(_create("op-1"), [CREATE])  # seq 2: anchoring is due here
        assert adm.allowed
        led.outcome(adm.seq, "op-1", True, None, False)  # seq 3
        for _ in range(4):  # more anchoring points, and the upkeep's
            led.append(AuditRecord(kind="supervisor", event="y"))
            led.checkpoint()
    assert [i.op_id for i in led.pending_intents()] == []
    assert led.quota_state(CREATE.key, 100, 3600.0).used == 1
    lines = [r for r in caplog.records if "anchor" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # once, not every interval
    res = led.audit.verify()
    assert not res.ok and "anchor damaged" in (res.problem or "")
    led.close()  # closing (which anchors) does not raise either


def test_a_chain_without_its_anchor_fails_verify_even_when_the_key_is_gone_too(
        tmp_path: Path) -> None:
    """Deleting both the anchor and its key must not turn "anchor missing" into "no anchor,
    not checked": read-only `verify` would then pass a truncated chain."""
    led = _ledger(tmp_path)
    for i in range(6):
        led.append(AuditRecord(kind="supervisor", event="x", detail=f"r{i}"))
    led.close()
    raw = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE seq > 3")  # cut the newest records
    raw.close()
    (tmp_path / "audit.anchor").unlink()
    (tmp_path / "keys" / "audit-anchor.key").unlink()
    log = AuditLog(open_store(tmp_path / "host.db", readonly=True), ManualClock(T0),
                   anchor_path=tmp_path / "audit.anchor",
                   key_path=tmp_path / "keys" / "audit-anchor.key", readonly=True)
    res = log.verify()
    assert not res.ok and "anchor missing" in (res.problem or ""), res


def test_a_fresh_home_makes_its_key_and_first_anchor_and_an_empty_chain_verifies(
        tmp_path: Path) -> None:
    """The legitimate start with nothing: an empty chain needs no anchor (read-only, keyless),
    and the first record written makes the key and anchors itself."""
    (tmp_path / "empty").mkdir()
    AuditLog(tmp_path / "empty" / "host.db", ManualClock(T0)).close()  # the schema only
    (tmp_path / "empty" / "keys" / "audit-anchor.key").unlink()
    assert open_readonly(tmp_path / "empty" / "host.db", ManualClock(T0)).verify().ok
    led = _ledger(tmp_path, every=64)
    led.append(AuditRecord(kind="supervisor", event="first"))
    assert (tmp_path / "keys" / "audit-anchor.key").exists()
    res = led.audit.verify()
    assert res.ok and res.anchor is not None and res.anchor.seq == 1
