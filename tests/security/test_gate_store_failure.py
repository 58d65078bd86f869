"""A store failure at a call's admission reaches the app as the gate's error, and is audited.

The admission's transaction (or the install record's read before it) raising the store's own
exception (`sqlite3.Error`, `PgError`: a connection the server ended, a lock wait that ran out)
escaped `Gate.handle` as that raw exception: no record of the call in the audit log, and the
app got only the child's generic answer. Now it is `GateError("internal")` with a reason, the
refusal is a `store_failed` decision record when the store can still take it, and it charges no
refusal budget (an outage is not the app's refusal; charging it would stop every calling app).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from gatehelp import build_rig, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError, RefusalBudgetExceeded
from host.home import Home
from host.ledger.refusals import REFUSAL_BUDGET

CREATE = {"username": "bot1", "name": "Bot", "type": "bot"}


def _store_fails(*_a: Any, **_kw: Any) -> Any:
    raise sqlite3.OperationalError("database is locked")


def _bodies(rig: Any) -> list[dict[str, Any]]:
    rows = rig.ledger.audit.store.conn().execute("SELECT body FROM audit ORDER BY seq")
    return [json.loads(r[0]) for r in rows]


def test_a_store_failure_at_admission_is_a_gate_error_and_audited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    for method in ("admit", "admit_apply"):  # the three-commit path and the one-transaction one
        monkeypatch.setattr(rig.ledger, method, _store_fails)
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "users.create", dict(CREATE))
    assert type(refused.value) is GateError and refused.value.code == "internal"
    assert "store failed" in refused.value.message
    failed = [b for b in _bodies(rig) if b.get("code") == "store_failed"]
    assert len(failed) == 1, _bodies(rig)
    assert failed[0]["allowed"] is False and failed[0]["action"] == "users.create"
    assert failed[0]["app_id"] == rig.session.app_id
    assert "users_create" not in rig.server.reached  # never reached the server


def test_store_failures_charge_no_refusal_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    for method in ("admit", "admit_apply"):
        monkeypatch.setattr(rig.ledger, method, _store_fails)
    for _ in range(REFUSAL_BUDGET + 1):
        with pytest.raises(GateError) as refused:
            rig.gate.handle(rig.session, "users.create", dict(CREATE))
        assert not isinstance(refused.value, RefusalBudgetExceeded)


def test_a_store_failure_that_refuses_its_record_too_is_still_a_gate_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    before = len(_bodies(rig))
    for method in ("admit", "admit_apply", "append"):  # the store is down for its record too
        monkeypatch.setattr(rig.ledger, method, _store_fails)
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "users.create", dict(CREATE))
    assert refused.value.code == "internal"
    assert len(_bodies(rig)) == before
