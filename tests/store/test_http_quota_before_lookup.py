"""What the gate asks before it looks an `http.request`'s host name up (`host.gate.httpquota`):
whether the call's quotas have a unit free, on both backends, exactly as the admission after
the decision will answer. A "free" that should be "full" lets an app out of quota make the host
send DNS queries again (tests/spine/test_spine_http_quota.py); a "full" that should be "free"
refuses a call its quota admits."""
from __future__ import annotations

from host.clock import ManualClock
from host.gate.httpquota import full_quota
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from tests.store.conftest import Db

T0 = 1_700_000_000.0
HTTP = Charge("install:i1:http.request#crm-http", 2, 60.0)
EVERY = Charge("install:i1:*#rate", 5, 60.0)


def _admit(led: Ledger, op: str) -> int:
    a = led.admit(AuditRecord(
        kind="decision", app_id="crm", install_id="i1", action="http.request", op_id=op,
        write=True, rules=("crm-api",), policy_rev="r" * 64,
        args_digest=digest_args({"url": op})), [HTTP, EVERY], None)
    assert a.allowed
    return a.seq


def test_a_full_quota_is_seen_before_the_lookup_and_a_freed_one_is_not(db: Db) -> None:
    clock = ManualClock(T0)
    led = db.ledger(clock)
    assert full_quota(led, [EVERY, HTTP]) is None  # never charged
    first = _admit(led, "op_a")
    assert full_quota(led, [EVERY, HTTP]) is None  # one unit left
    _admit(led, "op_b")
    full = full_quota(led, [EVERY, HTTP])
    assert full is not None and full.key == HTTP.key and full.next_free_at == T0 + 60
    # a refund frees the unit at once, as the admission would see it
    led.outcome(first, "op_a", False, "invalid_argument", refund=True)
    assert full_quota(led, [EVERY, HTTP]) is None
    _admit(led, "op_c")
    assert full_quota(led, [HTTP]) is not None
    clock.set(T0 + 60)  # the window has passed: both units free
    assert full_quota(led, [EVERY, HTTP]) is None
    assert full_quota(led, [Charge("install:i1:http.request#none", 0, 60.0)]) is not None
