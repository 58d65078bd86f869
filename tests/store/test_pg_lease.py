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
    return lambda host: led.settle(was_applied, host, untagged=host is None)


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def _host(url: str, base: Path, host_id: str, calls: int, ready: Any, finish: Any) -> None:
    led = _ledger(url, base, host_id)
    lease = StoreLease(url, host_id, ManualClock(T0))
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
