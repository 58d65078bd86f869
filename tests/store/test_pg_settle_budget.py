"""One lease sweep settles a dead host's calls for at most `SETTLE_BUDGET_S` (plus the read-back
under way) and leaves the rest for the next sweep (`host.ledger.storelease`).

The sweep runs on the upkeep thread that beats this host's own lease, and a host stops
admitting two sweep intervals after its last beat. Settling asks the server about each call:
against a Rocket.Chat workspace each read-back can take seconds, so a dead host with a backlog
of calls held the survivor's beat past its grace while it settled them all in one sweep, and
the survivor lost its lease too. Real PostgreSQL; the slow server is a `was_applied` that waits.
"""
from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from host.clock import ManualClock
from host.ledger import storelease
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.ledger.storelease import StoreLease
from host.migrate import migrate

T0 = 1_700_000_000.0
CREATE = Charge("app:a:users.create", 100, 3600.0)
CALLS = 6
READ_BACK_S = 0.2  # each of the dead host's calls: the server takes this long to answer


def _ledger(url: str, base: Path, host_id: str) -> Ledger:
    return Ledger(url, ManualClock(T0), anchor_path=base / host_id / "audit.anchor",
                  key_path=base / host_id / "anchor.key", host_id=host_id)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def _die(url: str, lease: StoreLease) -> None:
    """The host's lease session ends and its beat ages past its grace (the database's clock)."""
    pid = lease._conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone() is not None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        admin.execute("UPDATE host_leases SET beat_db = beat_db - 2 * grace_s"
                      " WHERE host_id = %s", (lease.host_id,))


def test_a_sweep_leaves_what_its_budget_cannot_settle_for_the_next(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storelease, "SETTLE_BUDGET_S", 0.3)
    migrate(pg_url)
    dead = _ledger(pg_url, tmp_path, "dead")
    dead_lease = StoreLease(pg_url, "dead", ManualClock(T0))
    dead_lease.acquire(lambda host, until=None: 0)
    for i in range(CALLS):
        assert dead.admit(_rec(f"dead-{i}"), [CREATE]).allowed
    _die(pg_url, dead_lease)

    survivor = _ledger(pg_url, tmp_path, "survivor")

    def slow_server(op_id: str) -> bool:
        time.sleep(READ_BACK_S)
        return False

    def settle(host: str | None, until: float | None = None) -> int:
        return survivor.settle(slow_server, host, untagged=host is None, until=until)

    lease = StoreLease(pg_url, "survivor", ManualClock(T0))
    per_sweep = [lease.acquire(settle)]
    while sum(per_sweep) < CALLS and len(per_sweep) <= CALLS:
        per_sweep.append(lease.sweep(settle))
    # Each sweep stopped at its budget (one sweep settled them all before) and the next went
    # on: every call settled once, its unit given back.
    assert sum(per_sweep) == CALLS, per_sweep
    assert max(per_sweep) < CALLS and len(per_sweep) > 1, per_sweep
    assert survivor.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 0
    assert lease.sweep(settle) == 0
    lease.release()
