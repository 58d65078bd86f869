"""The ledger: admit + outcome in two commits, refund rules, crash reconciliation."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import Ledger, LedgerError
from host.ledger.quota import Charge
from tests.store.conftest import Db

T0 = 1_700_000_000.0
CREATE = Charge("app:agent-sync:users.create", 2, 60.0, "app")


def _rec(op: str, action: str = "users.create", **kw: object) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="agent-sync", install_id="i1",
                       action=action, op_id=op, write=True, rules=("permit.create",),
                       policy_rev="r" * 64, args_digest=digest_args({"username": op}),
                       **kw)  # type: ignore[arg-type]


def test_admit_records_decision_and_reserves(db: Db) -> None:
    clock = ManualClock(T0)
    led = db.ledger(clock)
    a = led.admit(_rec("op1"), [CREATE], None)
    assert a.allowed and a.reservation is not None and a.message is None
    assert a.quota_state[0].used == 1
    body = led.audit.show(a.seq).body  # type: ignore[union-attr]
    assert body["kind"] == "decision" and body["allowed"] is True and body["code"] == "allow"
    assert body["quota"][0]["key"] == CREATE.key and body["quota"][0]["used"] == 1
    assert "username" not in str(body)  # arguments are digested, never stored
    out = led.outcome(a.seq, "op1", True, None, False)
    ob = led.audit.show(out).body  # type: ignore[union-attr]
    assert ob["kind"] == "outcome" and ob["ref_seq"] == a.seq and ob["ok"] is True
    assert ob["refunded"] is False and ob["action"] == "users.create"
    assert led.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 1
    assert led.audit.verify().ok


def test_quota_denial_is_audited_with_a_useful_message(db: Db) -> None:
    clock = ManualClock(T0)
    led = db.ledger(clock)
    for op in ("a", "b"):
        a = led.admit(_rec(op), [CREATE], None)
        led.outcome(a.seq, op, True, None, False)
    d = led.admit(_rec("c"), [CREATE], None)
    assert not d.allowed and d.reservation is None
    assert d.message is not None and CREATE.key in d.message and "at most 2 per 60s" in d.message
    assert "frees at" in d.message
    body = led.audit.show(d.seq).body  # type: ignore[union-attr]
    assert body["allowed"] is False and body["code"] == "quota_exceeded"
    assert led.pending_intents() == []  # a denial leaves nothing in flight


def test_refund_gives_the_unit_back_and_unknown_keeps_it(db: Db) -> None:
    clock = ManualClock(T0)
    led = db.ledger(clock)
    a = led.admit(_rec("a"), [CREATE], None)
    out = led.outcome(a.seq, "a", False, "conflict", True)  # applied nothing: refund
    assert led.audit.show(out).body["refunded"] is True  # type: ignore[union-attr]
    assert led.quota_state(CREATE.key, 2, 60.0).used == 0
    b = led.admit(_rec("b"), [CREATE], None)
    led.outcome(b.seq, "b", False, "timeout", False)  # unknown outcome: keep the unit
    assert led.quota_state(CREATE.key, 2, 60.0).used == 1
    with pytest.raises(LedgerError):
        led.outcome(b.seq, "b", False, "timeout", True)  # already settled: no double refund
    with pytest.raises(LedgerError):
        led.outcome(b.seq, "b", True, None, True)


def test_outcome_must_match_the_operation(db: Db) -> None:
    led = db.ledger(ManualClock(T0))
    a = led.admit(_rec("a"), [CREATE], None)
    with pytest.raises(LedgerError):
        led.outcome(a.seq, "someone-else", False, "conflict", True)
    assert led.quota_state(CREATE.key, 2, 60.0).used == 1


def test_seat_ceiling_in_the_same_transaction(db: Db) -> None:
    led = db.ledger(ManualClock(T0))
    users = 4  # the server's active app-created users (the truth)
    seen: list[list[str]] = []

    def counter(pending: Sequence[str]) -> int:
        seen.append(list(pending))
        return users + len(pending)

    a = led.admit(_rec("a"), [CREATE], 5, counter)
    assert a.allowed and seen[-1] == []
    d = led.admit(_rec("b"), [CREATE], 5, counter)
    assert not d.allowed and "workspace:seats" in (d.message or "")
    assert seen[-1] == ["a"]  # the admitted, unsettled creation holds the fifth seat
    assert led.quota_state(CREATE.key, 2, 60.0).used == 1  # no unit taken by the refused call
    led.outcome(a.seq, "a", False, "invalid_argument", True)
    assert led.seats_in_use(counter) == 4
    with pytest.raises(ValueError, match="seat counter"):
        led.admit(_rec("c"), [CREATE], 5)


def test_pending_intents_after_a_crash(db: Db) -> None:
    clock = ManualClock(T0)
    led = db.ledger(clock)
    a = led.admit(_rec("a"), [CREATE], None)
    b = led.admit(_rec("b"), [CREATE], None)
    led.outcome(a.seq, "a", True, None, False)
    del led  # the host dies between admit and outcome for "b"
    led2 = db.ledger(clock)
    pending = led2.pending_intents()
    assert [(p.seq, p.op_id, p.action, p.write) for p in pending] == [
        (b.seq, "b", "users.create", True)]
    # The host asks the server; "b" was never applied: refund, marked reconciled.
    out = led2.outcome(b.seq, "b", False, "not_applied", True, reconciled=True)
    assert led2.audit.show(out).body["reconciled"] is True  # type: ignore[union-attr]
    assert led2.pending_intents() == []
    assert led2.quota_state(CREATE.key, 2, 60.0).used == 1
    assert led2.audit.verify().ok


def test_deny_and_lifecycle_records(db: Db) -> None:
    led = db.ledger(ManualClock(T0))
    seq = led.deny(AuditRecord(kind="decision", code="permission_denied", app_id="x",
                               action="roles.assign", message="missing roles.assign"))
    assert led.audit.show(seq).body["allowed"] is False  # type: ignore[union-attr]
    with pytest.raises(Exception):
        led.deny(AuditRecord(kind="decision", app_id="x"))  # a denial needs a code
    led.append(AuditRecord(kind="lifecycle", install_id="i1", detail="installed"))
    led.checkpoint()
    led.close()
    assert db.ledger(ManualClock(T0)).audit.verify().ok


def test_read_without_charges_leaves_no_intent(db: Db) -> None:
    led = db.ledger(ManualClock(T0))
    rec = AuditRecord(kind="decision", app_id="x", action="users.get", op_id="r1", write=False)
    a = led.admit(rec, [], None)
    assert a.allowed and a.reservation is None
    assert led.pending_intents() == []
    led.outcome(a.seq, "r1", True, None, False)  # an outcome for a read is still accepted


def test_failed_append_reserves_nothing(db: Db) -> None:
    led = db.ledger(ManualClock(T0))
    with pytest.raises(Exception):
        led.admit(_rec("a", app_id="x" * 10_000), [CREATE], None)
    assert led.quota_state(CREATE.key, 2, 60.0).used == 0


def test_a_store_from_audit_schema_1_gains_the_intents_host_column(tmp_path: Path) -> None:
    """Versioned steps run once: a home made before intents named their host is upgraded when
    it opens, and its calls in flight are still settled."""
    import sqlite3

    from host.ledger.audit import DDL

    db = tmp_path / "host.db"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE schema_meta(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for stmt in DDL:
        if isinstance(stmt, str):
            c.execute(stmt)  # version 1's layout: audit_intents without host_id
    c.execute("INSERT INTO audit_intents(seq, op_id, ts, write, keys, seat)"
              " VALUES(7, 'old', 1.0, 1, '[]', 0)")
    c.execute("INSERT INTO schema_meta VALUES('audit', 1)")
    c.commit()
    c.close()
    led = Ledger(db, ManualClock(T0), host_id="h1")
    a = led.admit(_rec("new"), [CREATE], None)
    assert sorted((i.op_id, i.host_id or "") for i in led.pending_intents()) == [
        ("new", "h1"), ("old", "")]
    assert [i.op_id for i in led.audit.pending_intents(untagged=True)] == ["old"]
    assert led.settle(lambda op: False, "h1") == 1 and a.reservation is not None
    led.close()
    assert Ledger(db, ManualClock(T0)).pending_intents()[0].op_id == "old"  # reopened: no step


@pytest.mark.parametrize("action", ["http.request", "rest.call", "persistence.put"])
def test_a_host_served_write_cut_off_by_a_crash_keeps_its_unit_as_outcome_unknown(
        db: Db, action: str) -> None:
    """The host performs these itself and keeps no op log: the server's "no such op" says
    nothing about whether the request went out (or the row was written), so the survivor
    must not claim `not_applied` and give the unit back."""
    clock = ManualClock(T0)
    led = db.ledger(clock)
    charge = Charge(f"app:agent-sync:{action}", 5, 60.0, "app")
    a = led.admit(_rec("h1", action=action), [charge], None)
    del led  # the host dies with the request sent and its outcome not yet written
    survivor = db.ledger(clock)
    asked: list[str] = []
    assert survivor.settle(lambda op: asked.append(op) is not None) == 1  # "never applied"
    out = survivor.audit.show(survivor.audit.head()[0]).body  # type: ignore[union-attr]
    assert asked == ["h1"] and out["ref_seq"] == a.seq
    assert out["code"] == "outcome_unknown" and out["refunded"] is False
    assert out["reconciled"] is True
    assert survivor.quota_state(charge.key, 5, 60.0).used == 1
    assert survivor.pending_intents() == [] and survivor.audit.verify().ok
