"""A live host whose lease connection alone dies (`pg_terminate_backend`, `idle_session_timeout`,
a proxy cut, a backend restart) keeps serving through its other connections: another host's
sweep can then take its lease lock. It must not settle (refund) the live host's calls in flight,
or the live host's write applies on a refunded unit and a quota of one admits two creates
(DESIGN rule 8). A host that truly died is still settled, once its beat is past its grace.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger, LedgerError
from host.ledger.quota import Charge
from host.ledger.storelease import LeaseLost, StoreLease, lease_key
from host.migrate import migrate

T0 = 1_700_000_000.0
CREATE = Charge("app:a:users.create", 1, 3600.0)  # a quota of ONE


def _ledger(url: str, base: Path, host_id: str) -> Ledger:
    return Ledger(url, ManualClock(T0), anchor_path=base / host_id / "audit.anchor",
                  key_path=base / host_id / "anchor.key", host_id=host_id)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def _settler(led: Ledger, applied: set[str]) -> Any:
    return lambda host, until=None: led.settle(lambda op: op in applied, host,
                                              untagged=host is None, until=until)


def _kill_lease_session(url: str, lease: StoreLease) -> None:
    """End only the lease connection's backend, from another connection."""
    pid = lease._conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone() is not None:  # the signal is asynchronous
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_live_host_that_lost_its_lease_connection_keeps_its_calls(
        pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    applied: set[str] = set()
    live = _ledger(pg_url, tmp_path, "live")
    live_lease = StoreLease(pg_url, "live", ManualClock(T0))
    live_lease.acquire(_settler(live, applied))
    a = live.admit(_rec("live-0"), [CREATE])  # between its admission and its server write
    other = _ledger(pg_url, tmp_path, "other")
    other_lease = StoreLease(pg_url, "other", ManualClock(T0))
    other_lease.acquire(_settler(other, applied))

    _kill_lease_session(pg_url, live_lease)
    # The other host sweeps before the live one notices: the lock can be taken, but the live
    # host beat within its grace, so nothing of its is settled.
    assert other_lease.sweep(_settler(other, applied)) == 0
    assert [i.op_id for i in other.pending_intents()] == ["live-0"]
    # The live host's next sweep re-takes its own lock on a new connection.
    assert live_lease.sweep(_settler(live, applied)) == 0
    assert live_lease.held and live_lease.lost is None
    assert other_lease.sweep(_settler(other, applied)) == 0  # its lock is held again

    applied.add("live-0")  # the live host's server write applies; it records the outcome
    live.outcome(a.seq, "live-0", True, None, False)
    assert not other.admit(_rec("other-0"), [CREATE]).allowed  # the quota of one holds
    assert other.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 1
    outcomes = [e.body for e in other.audit.tail(10) if e.body["kind"] == "outcome"]
    assert [(b["op_id"], b["ok"], b["refunded"]) for b in outcomes] == [("live-0", True, False)]
    other_lease.release()
    live_lease.release()


def test_a_host_that_cannot_retake_its_lease_fails_closed(pg_url: str, tmp_path: Path) -> None:
    """Its lock taken by another host (which may be settling its calls): it gives up the
    lease and admits nothing more, instead of serving unleased."""
    from host.ledger.storelease import HostLease

    migrate(pg_url)
    live = _ledger(pg_url, tmp_path, "live")
    home = type("H", (), {"store_url": pg_url, "lease_path": tmp_path / "unused"})()
    host_lease = HostLease(home, "live", ManualClock(T0), lambda h, u, until: 0,
                           on_lost=live.refuse_admissions)
    host_lease.acquire()
    shared = host_lease._shared
    assert shared is not None
    _kill_lease_session(pg_url, shared)
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lease_key("live"),))
        assert host_lease.sweep() == 0  # logged and reported, not raised as a checkpoint error
    assert not shared.held and shared.lost is not None
    with pytest.raises(LedgerError, match="admits no calls"):
        live.admit(_rec("after"), [CREATE])
    assert host_lease.sweep() == 0  # once lost, stays lost
    host_lease.release()


def test_a_host_past_its_grace_does_not_retake_its_lease(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    lease = StoreLease(pg_url, "late", ManualClock(T0))
    lease.acquire(lambda h, until=None: 0)
    _kill_lease_session(pg_url, lease)
    with psycopg.connect(pg_url, autocommit=True) as c:  # as if it noticed too late
        c.execute("UPDATE host_leases SET beat_db = beat_db - 2 * grace_s")
    with pytest.raises(LeaseLost):
        lease.sweep(lambda h, until=None: 0)
    assert not lease.held


def test_a_dead_host_is_settled_once_its_grace_passes(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    applied: set[str] = set()
    dead = _ledger(pg_url, tmp_path, "dead")
    dead_lease = StoreLease(pg_url, "dead", ManualClock(T0), sweep_interval_s=0.25)
    assert dead_lease.grace_s == 1.0
    dead_lease.acquire(_settler(dead, applied))
    assert dead.admit(_rec("dead-0"), [CREATE]).allowed
    dead_lease._conn.close()  # its process gone: the session ends, its row stays, no more beats
    dead.close()
    other = _ledger(pg_url, tmp_path, "other")
    other_lease = StoreLease(pg_url, "other", ManualClock(T0))
    settled = other_lease.acquire(_settler(other, applied))
    start = time.monotonic()
    while settled == 0 and time.monotonic() - start < 10:
        time.sleep(0.1)
        settled = other_lease.sweep(_settler(other, applied))
    assert settled == 1
    assert other.pending_intents() == []
    assert other.admit(_rec("other-0"), [CREATE]).allowed  # the dead host's unit came back
    assert other_lease.sweep(_settler(other, applied)) == 0
    other_lease.release()


def test_a_version_1_lease_table_migrates_to_server_clock_beats(pg_url: str) -> None:
    from host.migrate import store_status

    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:  # the layout of the previous release
        c.execute("ALTER TABLE host_leases DROP COLUMN beat_db, DROP COLUMN grace_s")
        c.execute("UPDATE schema_meta SET version = 1 WHERE component = 'leases'")
    stale = [s for s in store_status(pg_url) if not s.current]
    assert [(s.name, s.have, s.need) for s in stale] == [("leases", 1, 2)]
    assert all(s.current for s in migrate(pg_url))
    lease = StoreLease(pg_url, "h", ManualClock(T0))
    lease.acquire(lambda h, until=None: 0)
    with psycopg.connect(pg_url, autocommit=True) as c:
        row = c.execute("SELECT extract(epoch from clock_timestamp()) - beat_db, grace_s"
                        " FROM host_leases").fetchone()
    assert row is not None and 0 <= row[0] < 5 and row[1] == 20.0
    lease.release()


def test_a_host_whose_beats_stop_stops_admitting_before_its_grace(
        pg_url: str, tmp_path: Path) -> None:
    """Its upkeep stuck (say on a lease connection that hangs): no sweep ever notices, yet the
    host stops admitting calls well before a survivor may settle them, and starts again once
    it beats."""
    from host.ledger.storelease import ADMIT_SWEEPS, GRACE_SWEEPS, HostLease

    assert ADMIT_SWEEPS < GRACE_SWEEPS  # room for a call admitted at the end to finish
    migrate(pg_url)
    led = _ledger(pg_url, tmp_path, "stuck")
    home = type("H", (), {"store_url": pg_url, "lease_path": tmp_path / "unused"})()
    lease = HostLease(home, "stuck", ManualClock(T0), lambda h, u, until: 0, sweep_interval_s=0.25,
                      on_lost=led.refuse_admissions, on_beat=led.admit_until)
    lease.acquire()
    assert led.admit(_rec("in-time"), []).allowed
    time.sleep(ADMIT_SWEEPS * 0.25 + 0.1)  # no sweep: the beats stop
    with pytest.raises(LedgerError, match="not renewed in time"):
        led.admit(_rec("late"), [CREATE])
    with pytest.raises(LedgerError, match="not renewed in time"):
        led.admit(_rec("late-read"), [])
    assert lease.sweep() == 0  # it beats again
    assert led.admit(_rec("again"), [CREATE]).allowed
    lease.release()


def test_a_survivor_checking_the_lock_at_that_moment_does_not_cost_the_lease(
        pg_url: str, tmp_path: Path) -> None:
    """A survivor's sweep holds a dead-session host's lock for a moment to read its beat; the
    host re-taking its own lock just then tries again rather than give up serving."""
    import threading

    migrate(pg_url)
    lease = StoreLease(pg_url, "live", ManualClock(T0))
    lease.acquire(lambda h, until=None: 0)
    _kill_lease_session(pg_url, lease)
    holding = threading.Event()

    def survivor_checks() -> None:
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute("SELECT pg_advisory_lock(%s)", (lease_key("live"),))
            holding.set()
            time.sleep(0.06)  # reads the beat: fresh, lets go
            c.execute("SELECT pg_advisory_unlock(%s)", (lease_key("live"),))

    t = threading.Thread(target=survivor_checks)
    t.start()
    assert holding.wait(10)
    lease.sweep(lambda h, until=None: 0)
    t.join()
    assert lease.held and lease.lost is None
    lease.release()


def test_doctor_names_a_host_past_its_grace(pg_url: str, tmp_path: Path) -> None:
    """The operator sees which listed host no longer beats (its lease will be settled)."""
    from host.doctor import shared_store_checks
    from host.ledger.storelease import live_hosts

    migrate(pg_url)
    lease = StoreLease(pg_url, "quiet", ManualClock(T0))
    lease.acquire(lambda h, until=None: 0)
    assert [h.past_grace for h in live_hosts(pg_url)] == [False]
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("UPDATE host_leases SET beat_db = beat_db - 2 * grace_s")
    assert [h.past_grace for h in live_hosts(pg_url)] == [True]
    checks, _ = shared_store_checks(pg_url)
    assert any("quiet" in c.detail and "past its grace" in c.detail for c in checks)
    lease.release()


def test_serve_stops_and_says_why_when_its_lease_is_lost(pg_url: str, tmp_path: Path) -> None:
    """A `serve` whose lease cannot be re-taken exits 1 naming the lost lease, instead of
    running its apps on with every call refused and only a log line to show it (before: it
    served on until killed)."""
    import subprocess

    from servehelp import serving

    from host.home import Home

    migrate(pg_url)
    home = Home(tmp_path / "home", pg_url).ensure()
    with serving(home, "--store", pg_url, "serve") as (proc, _port), \
            psycopg.connect(pg_url, autocommit=True) as admin:
        (host_id,) = admin.execute("SELECT host_id FROM host_leases").fetchone()  # type: ignore[misc]
        key = lease_key(str(host_id))
        (pid,) = admin.execute(  # type: ignore[misc]
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
            "((classid::bigint << 32) | objid::bigint) = (%s::bigint & x'ffffffffffffffff'"
            "::bigint)", (key,)).fetchone()
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with psycopg.connect(pg_url, autocommit=True) as holder:
            # Taken by another session before the host's sweep tries: it cannot re-take it.
            deadline = time.monotonic() + 10
            while not holder.execute("SELECT pg_try_advisory_lock(%s)",
                                     (key,)).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline
                time.sleep(0.01)
            try:
                code = proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                pytest.fail("serve went on serving after its lease was lost")
        assert proc.stderr is not None
        rest = proc.stderr.read()
    assert code == 1, rest
    assert "lost its lease" in rest and "start `stockade serve` again" in rest
    assert "Traceback" not in rest
