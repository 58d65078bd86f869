"""Three hosts in separate processes race on one PostgreSQL store: exact, with one audit chain.

Every round, each host tries to create on the same quota (limit 1): exactly one may win. The
seat ceiling is raced the same way. A control without the store's write lock shows the race is
real: the same quota code over-admits as soon as the lock is gone."""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge, QuotaStore, Reservation
from host.migrate import migrate
from host.store.pg import PgConn, PgStore

HOSTS = 3
ROUNDS = 1000
SEATS = 40
T0 = 1_700_000_000.0


def _own(base: Path, wid: int) -> dict[str, Path]:
    """Each host's own files: its audit anchor and the anchor's key (never in the store)."""
    return {"anchor_path": base / f"host{wid}" / "audit.anchor",
            "key_path": base / f"host{wid}" / "anchor.key"}


def _rec(op: str) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="a", install_id="i", action="users.create",
                       op_id=op, write=True)


def _host(url: str, base: Path, wid: int, rounds: int, barrier: Any, out: Any) -> None:
    led = Ledger(url, ManualClock(T0), **_own(base, wid))
    won: list[int] = []
    for r in range(rounds):
        barrier.wait(timeout=60)
        a = led.admit(_rec(f"h{wid}-r{r}"), [Charge(f"app:a:create:{r}", 1, 3600.0)])
        if a.allowed:
            won.append(r)
    seats = 0
    for i in range(SEATS):  # then all race for the last seats (no server: pending = in use)
        barrier.wait(timeout=60)
        seats += led.admit(_rec(f"h{wid}-s{i}"), [], SEATS, len).allowed
    out.put((wid, won, seats))


def _run(target: Any, args: tuple[Any, ...], hosts: int = HOSTS) -> list[Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    barrier = ctx.Barrier(hosts)
    procs = [ctx.Process(target=target, args=(*args, w, barrier, out)) for w in range(hosts)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _host_args(url: str, base: Path, wid: int, barrier: Any, out: Any) -> None:
    try:
        _host(url, base, wid, ROUNDS, barrier, out)
    except BaseException as exc:  # a failed host fails the race at once, not by time-out
        barrier.abort()
        out.put((wid, repr(exc), 0))


def test_three_hosts_never_over_admit_and_share_one_chain(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    results = _run(_host_args, (pg_url, tmp_path))
    errors = [won for _, won, _ in results if isinstance(won, str)]
    assert not errors, errors
    winners: dict[int, int] = {}
    for _, won, _ in results:
        for r in won:
            winners[r] = winners.get(r, 0) + 1
    over = sum(1 for n in winners.values() if n > 1)
    assert over == 0, f"{over} of {ROUNDS} rounds admitted more than one create"
    assert len(winners) == ROUNDS  # and no round was lost to an error
    assert sum(seats for _, _, seats in results) == SEATS
    # One chain, verified whole from every host, each against the anchor it wrote itself.
    for w in range(HOSTS):
        log = AuditLog(pg_url, ManualClock(T0), readonly=True, **_own(tmp_path, w))
        v = log.verify()
        assert v.ok, v.problem
        assert v.records == HOSTS * (ROUNDS + SEATS) and v.anchor is not None
    hosts_in_chain = {str(e.body["op_id"]).split("-")[0] for e in log.tail(v.records)}
    assert hosts_in_chain == {f"h{w}" for w in range(HOSTS)}


class _NoLockConn(PgConn):
    """The control's connection: a write transaction without the store's write lock."""

    def begin(self) -> Any:
        return self.raw.execute(b"BEGIN")


class _NoLockStore(PgStore):
    def conn(self) -> PgConn:
        c = super().conn()
        c.__class__ = _NoLockConn
        return c


def _unlocked(url: str, wid: int, barrier: Any, out: Any) -> None:
    q = QuotaStore(_NoLockStore(url), ManualClock(T0 + wid))
    won = []
    for r in range(200):
        barrier.wait(timeout=60)
        try:
            got = q.reserve([Charge(f"warm:{r}", 1, 3600.0)], f"h{wid}-{r}")
        except Exception:  # a lost race may also surface as a conflict
            continue
        if isinstance(got, Reservation):
            won.append(r)
    out.put((wid, won, os.getpid()))


def test_control_without_the_write_lock_the_same_race_over_admits(pg_url: str) -> None:
    migrate(pg_url)
    q = QuotaStore(pg_url, ManualClock(T0 - 7200))
    for r in range(200):  # each round's quota exists, with its one unit free
        q.refund(q.reserve([Charge(f"warm:{r}", 1, 3600.0)], "warm"))  # type: ignore[arg-type]
    winners: dict[int, int] = {}
    for _, won, _ in _run(_unlocked, (pg_url,)):
        for r in won:
            winners[r] = winners.get(r, 0) + 1
    assert any(n > 1 for n in winners.values()), "the control race never overlapped"
