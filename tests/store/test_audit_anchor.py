"""The audit anchor: what moves it, what may not, and what a damaged or missing one means.

Each test here attacks the anchor the way someone with write access to the home's files (not
the anchor's key) could, and checks the chain's one witness outside `host.db` is not lost.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge

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
