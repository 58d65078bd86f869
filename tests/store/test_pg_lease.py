"""A host SIGKILLed mid-create on a shared PostgreSQL store: a surviving host settles exactly
its unfinished calls — applied ones keep their units, the rest come back — while another live
host's calls in flight stay untouched; nothing is double-counted or lost.

The "server" here is a table of applied operation ids in the same database (the ledger's
settlement asks only `was_applied(op_id)`; the full host asks its workspace the same question).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.ledger.storelease import StoreLease, live_hosts
from host.migrate import migrate

T0 = 1_700_000_000.0
CREATE = Charge("app:a:users.create", 100, 3600.0)
VICTIM_CALLS = 10
LIVE_CALLS = 5


def _ledger(url: str, base: Path, host_id: str) -> Ledger:
    return Ledger(url, ManualClock(T0), anchor_path=base / host_id / "audit.anchor",
                  key_path=base / host_id / "anchor.key", host_id=host_id)


def _applied(url: str) -> Any:
    conn = psycopg.connect(url, autocommit=True)

    def was_applied(op_id: str) -> bool:
        return conn.execute("SELECT 1 FROM applied_ops WHERE op_id = %s", (op_id,)).fetchone() \
            is not None
    return was_applied


def _settler(led: Ledger, url: str) -> Any:
    was_applied = _applied(url)
    return lambda host, until=None: led.settle(was_applied, host, untagged=host is None,
                                              until=until)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def _host(url: str, base: Path, host_id: str, calls: int, ready: Any, finish: Any) -> None:
    led = _ledger(url, base, host_id)
    # A short sweep interval (grace 1 s): the survivor settles the SIGKILLed host soon.
    lease = StoreLease(url, host_id, ManualClock(T0), sweep_interval_s=0.25)
    lease.acquire(_settler(led, url))
    admitted = []
    with psycopg.connect(url, autocommit=True) as server:
        for i in range(calls):
            op = f"{host_id}-{i}"
            a = led.admit(_rec(op), [CREATE])
            admitted.append((a.seq, op))
            if i % 2 == 0:  # the server applied every other create before the host died
                server.execute("INSERT INTO applied_ops(op_id) VALUES(%s)", (op,))
    ready.set()
    finish.wait(120)  # the victim never gets here alive: it is SIGKILLed while waiting
    for seq, op in admitted:
        led.outcome(seq, op, True, None, False)
    lease.release()


def test_a_survivor_settles_exactly_the_dead_hosts_calls(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE applied_ops(op_id TEXT PRIMARY KEY)")
    ctx = mp.get_context("spawn")
    events = {name: (ctx.Event(), ctx.Event()) for name in ("victim", "live")}
    procs = {
        name: ctx.Process(target=_host, args=(pg_url, tmp_path, name, calls, *events[name]))
        for name, calls in (("victim", VICTIM_CALLS), ("live", LIVE_CALLS))}
    for p in procs.values():
        p.start()
    for ready, _ in events.values():
        assert ready.wait(60)
    survivor = _ledger(pg_url, tmp_path, "survivor")
    lease = StoreLease(pg_url, "survivor", ManualClock(T0))
    settle = _settler(survivor, pg_url)
    assert lease.acquire(settle) == 0  # both others are alive: nothing of theirs is touched
    used = survivor.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used
    assert used == VICTIM_CALLS + LIVE_CALLS
    assert {h.host_id for h in live_hosts(pg_url)} == {"victim", "live", "survivor"}

    os.kill(procs["victim"].pid, signal.SIGKILL)  # type: ignore[arg-type]
    procs["victim"].join(10)
    settled, deadline = 0, time.monotonic() + 20
    while settled == 0 and time.monotonic() < deadline:  # until PostgreSQL ends its session
        settled = lease.sweep(settle)
        time.sleep(0.05)
    assert settled == VICTIM_CALLS
    assert lease.sweep(settle) == 0  # settled once: a second sweep finds nothing
    not_applied = VICTIM_CALLS // 2
    used = survivor.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used
    assert used == VICTIM_CALLS + LIVE_CALLS - not_applied
    pending = survivor.pending_intents()
    assert sorted(i.op_id for i in pending) == sorted(f"live-{i}" for i in range(LIVE_CALLS))
    assert {h.host_id for h in live_hosts(pg_url)} == {"live", "survivor"}
    outcomes = [e.body for e in survivor.audit.tail(200) if e.body["kind"] == "outcome"]
    assert sorted((b["op_id"], b["ok"], b["refunded"], b.get("reconciled")) for b in outcomes) \
        == sorted((f"victim-{i}", i % 2 == 0, i % 2 == 1, True) for i in range(VICTIM_CALLS))

    events["live"][1].set()  # the live host finishes its calls itself
    procs["live"].join(60)
    assert procs["live"].exitcode == 0
    assert survivor.pending_intents() == []
    assert survivor.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == used
    lease.release()
    assert live_hosts(pg_url) == []
    assert survivor.audit.verify().ok


def test_a_cleanly_stopped_hosts_unfinished_call_is_settled_by_the_next_sweep(
        pg_url: str, tmp_path: Path) -> None:
    """A host whose call's outcome could not be written (a store error at that moment) and
    which then stops cleanly deletes its lease row: its intent was visited by no sweep (only
    hosts with a row) and no `settle(None)` (only untagged intents), so its unit stayed taken
    for good. Now a sweep also visits intents of hosts that have no row."""
    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE applied_ops(op_id TEXT PRIMARY KEY)")
    a = _ledger(pg_url, tmp_path, "stopped")
    lease_a = StoreLease(pg_url, "stopped", ManualClock(T0))
    lease_a.acquire(_settler(a, pg_url))
    done = a.admit(_rec("done"), [CREATE])
    a.outcome(done.seq, "done", True, None, False)
    assert a.admit(_rec("lost"), [CREATE]).allowed  # its outcome is never written
    lease_a.release()
    a.close()
    assert [i.op_id for i in a.pending_intents()] == ["lost"]

    b = _ledger(pg_url, tmp_path, "next")
    lease_b = StoreLease(pg_url, "next", ManualClock(T0))
    assert lease_b.acquire(_settler(b, pg_url)) == 1
    assert b.pending_intents() == []
    assert b.quota_state(CREATE.key, CREATE.limit, CREATE.window_s).used == 1  # refunded
    outcome = b.audit.tail(1)[0].body
    assert outcome["op_id"] == "lost" and outcome["reconciled"] and outcome["refunded"]
    assert lease_b.sweep(_settler(b, pg_url)) == 0  # settled once
    lease_b.release()
    b.close()


def test_a_sweep_never_settles_the_calls_of_a_live_host_it_has_no_row_for(
        pg_url: str, tmp_path: Path) -> None:
    """A host is alive while it holds its advisory lock, row or no row: its calls in flight
    are never touched."""
    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE applied_ops(op_id TEXT PRIMARY KEY)")
    live = _ledger(pg_url, tmp_path, "live")
    lease_live = StoreLease(pg_url, "live", ManualClock(T0))
    lease_live.acquire(_settler(live, pg_url))
    assert live.admit(_rec("in-flight"), [CREATE]).allowed
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DELETE FROM host_leases WHERE host_id = 'live'")  # its row lost, not its lock
    other = _ledger(pg_url, tmp_path, "other")
    lease_other = StoreLease(pg_url, "other", ManualClock(T0))
    assert lease_other.acquire(_settler(other, pg_url)) == 0
    assert [i.op_id for i in other.pending_intents()] == ["in-flight"]
    lease_other.release()
    lease_live.release()
    other.close()
    live.close()
