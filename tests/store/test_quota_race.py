"""Several real OS processes sharing one host.db admit exactly N (quota units and seats).

Seats are counted from the truth inside the admitting transaction (`Ledger.admit`): here no
server applies anything, so the seats in use are exactly the creations admitted and pending."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge, QuotaStore, Reservation

PROCS = 6
TRIES = 15  # per process: 90 attempts racing for 25 units
LIMIT = 25


def _worker(db: str, start: float, kind: str, wid: int, results: mp.Queue[int],
            barrier: Any) -> None:
    q = QuotaStore(Path(db), ManualClock(start))
    led = Ledger(Path(db), ManualClock(start))
    barrier.wait(timeout=60)  # all processes hammer the store at the same time
    won = 0
    for i in range(TRIES):
        op = f"w{wid}-{i}"
        if kind == "quota":
            won += isinstance(q.reserve([Charge("app:a:users.create", LIMIT, 3600.0)], op),
                              Reservation)
        else:
            won += led.admit(AuditRecord(kind="decision", app_id="a", install_id="i",
                                         action="users.create", op_id=op, write=True),
                             [], LIMIT, len).allowed
    results.put(won)


def _race(tmp_path: Path, kind: str) -> int:
    db = tmp_path / "host.db"
    Ledger(db, ManualClock(1_700_000_000.0)).close()  # create the schema once
    ctx = mp.get_context("spawn")
    results: mp.Queue[int] = ctx.Queue()
    barrier = ctx.Barrier(PROCS)
    procs = [ctx.Process(target=_worker,
                         args=(str(db), 1_700_000_000.0 + w, kind, w, results, barrier))
             for w in range(PROCS)]
    for p in procs:
        p.start()
    total = sum(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return total


def test_processes_racing_admit_exactly_n(tmp_path: Path) -> None:
    assert _race(tmp_path, "quota") == LIMIT
    q = QuotaStore(tmp_path / "host.db", ManualClock(1_700_000_010.0))
    assert q.state("app:a:users.create", LIMIT, 3600.0).used == LIMIT


def test_processes_racing_for_seats_admit_exactly_ceiling(tmp_path: Path) -> None:
    assert _race(tmp_path, "seats") == LIMIT
    assert Ledger(tmp_path / "host.db", ManualClock(0)).seats_in_use(len) == LIMIT
