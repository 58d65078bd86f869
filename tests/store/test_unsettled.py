"""Asking again about calls whose outcome was unknown (`host.ledger.unsettled`) settles only the
calls noted, each once: never a call of the same host still in flight (its intent looks the
same in the store), whatever the server says about it."""
from __future__ import annotations

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.quota import Charge
from tests.store.conftest import Db

CREATE = Charge("install:i:users.create#q", 3, 100.0)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def test_only_the_noted_calls_are_settled(db: Db) -> None:
    clock = ManualClock()
    led = db.ledger(clock)
    led.host_id = "h1"
    for op in ("ended", "in-flight"):
        assert led.admit(_rec(op), [CREATE]).allowed
    led.unsettled.note("ended")
    asked: list[str] = []

    def not_applied(op_id: str) -> bool:
        asked.append(op_id)
        return False

    assert led.unsettled.settle(led, not_applied) == 1
    assert asked == ["ended"]
    assert [i.op_id for i in led.pending_intents()] == ["in-flight"]
    assert led.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 1  # refunded once
    assert len(led.unsettled) == 0  # settled: forgotten
    assert led.unsettled.settle(led, not_applied) == 0  # nothing noted: nothing asked
    assert asked == ["ended"]


def test_a_call_the_server_cannot_answer_for_stays_noted(db: Db) -> None:
    led = db.ledger(ManualClock())
    led.host_id = "h1"
    assert led.admit(_rec("ended"), [CREATE]).allowed
    led.unsettled.note("ended")

    def down(op_id: str) -> bool:
        raise RuntimeError("the store is down")

    assert led.unsettled.settle(led, down) == 0
    assert len(led.unsettled) == 1 and [i.op_id for i in led.pending_intents()] == ["ended"]
    assert led.unsettled.settle(led, lambda op_id: True) == 1  # applied: the unit kept
    assert led.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 1
    assert len(led.unsettled) == 0
