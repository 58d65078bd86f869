"""A host stopped in the middle of a call (SIGSTOP, a long GC pause, a VM freeze) past its lease
grace has that call settled by a survivor: a create not applied yet is marked `not_applied` and
its unit refunded. When the stopped host resumes, it goes on where it stopped: its server write
and its outcome. Without a fencing token that write applied on the refunded unit, so a quota
of one admitted two creates and the audit chain said `not_applied` of a user that exists
(DESIGN rule 8). The survivor now takes the stopped host's lease row away, under the store's
write locks, before it settles anything; every write transaction of a serving host checks, under
its write lock, that its row is still there (`host.store.pg`, `host.ledger.storelease`).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.ledger.storelease import LeaseLost, StoreLease
from host.migrate import migrate
from host.server.embedded import EmbeddedServer
from host.server.principals import Caller
from host.store import DB_ERRORS
from host.store.base import Fenced

T0 = 1_700_000_000.0
CREATE = Charge("app:a:users.create", 1, 3600.0)  # a quota of ONE
APP = Caller(app_id="a", install_id="i", app_user_id=None)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


class _Host:
    """The parts of one host that act on a call: its ledger, its embedded server's store and
    its lease, wired as `host.runtime.Host` wires them."""

    def __init__(self, url: str, base: Path, host_id: str) -> None:
        clock = ManualClock(T0)
        self.ledger = Ledger(url, clock, anchor_path=base / host_id / "audit.anchor",
                             key_path=base / host_id / "anchor.key", host_id=host_id)
        self.server = EmbeddedServer(url, clock)
        self.lease = StoreLease(url, host_id, clock)
        self.settled = self.lease.acquire(self.settle, (self.ledger.store, self.server.db))

    def settle(self, host: str | None, until: float | None = None) -> int:
        return self.ledger.settle(self.server.was_applied, host, untagged=host is None,
                                  until=until)

    def create(self, name: str, seq: int, op: str) -> None:
        """The rest of a create after its admission: the server write, then the outcome."""
        self.server.users_create(APP, name, name, "bot", op_id=op)
        self.ledger.outcome(seq, op, True, None, False)


def _freeze(url: str, host: _Host) -> None:
    """What a frozen host looks like from the store once its grace has passed: its lease
    session ended (TCP keepalives gave up on a frozen VM, `idle_session_timeout`, a proxy) and
    its last beat is older than its grace (by the database's clock, as a real wait would make
    it; no sleeping). Its other connections are untouched, as they would be."""
    pid = host.lease._conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone() is not None:  # the signal is asynchronous
            assert time.monotonic() < deadline
            time.sleep(0.01)
        admin.execute("UPDATE host_leases SET beat_db = beat_db - 2 * grace_s"
                      " WHERE host_id = %s", (host.lease.host_id,))


def _outcomes(led: Ledger) -> list[tuple[Any, ...]]:
    return [(b["op_id"], b["ok"], b["code"], b["refunded"])
            for b in (e.body for e in led.audit.tail(20)) if b["kind"] == "outcome"]


def test_a_host_resuming_after_its_call_was_settled_cannot_apply_it(
        pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    stopped = _Host(pg_url, tmp_path, "stopped")
    a = stopped.ledger.admit(_rec("stopped-0"), [CREATE])
    assert a.allowed
    # Stopped here, between its admission and its server write, past its grace.
    _freeze(pg_url, stopped)
    survivor = _Host(pg_url, tmp_path, "survivor")
    assert survivor.settled == 1  # not applied: refunded
    assert _outcomes(survivor.ledger) == [("stopped-0", False, "not_applied", True)]

    # The stopped host resumes where it stopped: its server write and its outcome are refused.
    with pytest.raises(DB_ERRORS):
        stopped.server.users_create(APP, "late", "late", "bot", op_id="stopped-0")
    with pytest.raises(DB_ERRORS):
        stopped.ledger.outcome(a.seq, "stopped-0", True, None, False)
    with pytest.raises(LeaseLost):  # its next sweep finds its lease gone: it admits no more
        stopped.lease.sweep(stopped.settle)
    assert not stopped.lease.held

    # The survivor uses the refunded unit: exactly one user for the quota of one.
    b = survivor.ledger.admit(_rec("survivor-0"), [CREATE])
    assert b.allowed
    survivor.create("early", b.seq, "survivor-0")
    assert survivor.server.count_users_created_by("a") == 1
    assert not survivor.server.was_applied("stopped-0")  # what the audit chain says is so
    assert _outcomes(survivor.ledger) == [("stopped-0", False, "not_applied", True),
                                          ("survivor-0", True, "ok", False)]
    survivor.lease.release()


def test_a_write_under_way_when_the_survivor_fences_is_settled_as_applied(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fence and a write are ordered by the write lock, not by luck: a server write that
    held its lock when the survivor came commits before the fence, and the survivor then
    settles it as applied (its unit kept); the stopped host's outcome after it is refused."""
    from host.server import ops

    migrate(pg_url)
    stopped = _Host(pg_url, tmp_path, "stopped")
    a = stopped.ledger.admit(_rec("stopped-0"), [CREATE])
    inside, go_on = threading.Event(), threading.Event()
    real_record = ops.record

    def record_then_wait(*args: Any, **kwargs: Any) -> None:
        real_record(*args, **kwargs)
        inside.set()  # the write is done, its transaction not committed yet
        assert go_on.wait(30)

    monkeypatch.setattr(ops, "record", record_then_wait)
    writer = threading.Thread(target=stopped.server.users_create,
                              args=(APP, "mid", "mid", "bot"), kwargs={"op_id": "stopped-0"})
    writer.start()
    assert inside.wait(10)
    _freeze(pg_url, stopped)
    survivor: list[_Host] = []
    settling = threading.Thread(
        target=lambda: survivor.append(_Host(pg_url, tmp_path, "survivor")))
    settling.start()
    with psycopg.connect(pg_url, autocommit=True) as admin:  # the survivor waits on a lock
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND wait_event = 'advisory' AND query LIKE '%SET LOCAL lock_timeout%'"
                            ).fetchone() is None:  # (the survivor's fence: `_FENCE_BARRIER`)
            assert time.monotonic() < deadline and settling.is_alive()
            time.sleep(0.01)
    go_on.set()
    writer.join(10)
    settling.join(10)
    assert survivor and survivor[0].settled == 1
    assert _outcomes(survivor[0].ledger) == [("stopped-0", True, "ok", False)]
    with pytest.raises(DB_ERRORS):
        stopped.ledger.outcome(a.seq, "stopped-0", True, None, False)
    assert not survivor[0].ledger.admit(_rec("survivor-0"), [CREATE]).allowed
    survivor[0].lease.release()


def test_a_host_whose_lease_row_is_gone_writes_nothing_and_gives_up_its_lease(
        pg_url: str, tmp_path: Path) -> None:
    """Its lease session alive, its row deleted (by hand, or a survivor's fence): its writes
    are refused, and its next beat, which changes no row, counts as the lease lost (before, the
    beat's UPDATE of no row passed silently and the host served on)."""
    migrate(pg_url)
    host = _Host(pg_url, tmp_path, "h")
    assert host.ledger.admit(_rec("h-0"), [CREATE]).allowed  # fenced, and its row is there
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DELETE FROM host_leases WHERE host_id = 'h'")
    with pytest.raises(Fenced, match="no longer holds its lease"):
        host.ledger.admit(_rec("h-1"), [])
    with pytest.raises(Fenced):
        host.server.users_create(APP, "fenced-user", "F", "bot", op_id="h-1")
    with pytest.raises(LeaseLost, match="lease row is gone"):
        host.lease.sweep(host.settle)
    assert not host.lease.held
    host.lease.release()
    host.lease.release()  # (twice: safe)
    # Every write transaction opens, and rolls back, cleanly: the connection serves on.
    assert host.ledger.store.conn().execute("SELECT 1").fetchone()[0] == 1
