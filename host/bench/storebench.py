"""`stockade bench --store postgresql://…`: what the ledger's two commits cost on each store.

The ledger is the part of every bridge call that lives in the store: a create's admission
(quota check, reservation, decision record, intent) and its outcome; a read's decision record.
This measures them through `host.ledger.Ledger` on the home's SQLite file and on the given
PostgreSQL database, in one run, then the aggregate creates a second of three host processes
sharing each store (the figure several hosts buy, or do not). It works in a temporary folder and
a schema of its own in the database (dropped afterwards), never in the operator's data.
"""
from __future__ import annotations

import multiprocessing as mp
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from host.clock import SystemClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge
from host.store import StoreError, StoreTarget

HOSTS = 3
# A quota wide enough that the bench measures the reservation, never a refusal.
_CHARGE_LIMIT = 100_000


@dataclass(frozen=True)
class StoreFigures:
    store: str
    create_us_p50: float
    create_us_p99: float
    read_us_p50: float
    hosts3_creates_per_s: float

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def with_schema(url: str, schema: str) -> str:
    """`url` whose connections use `schema` first (the bench's own, never the operator's)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _ledger(target: StoreTarget, own: Path, tag: str) -> Ledger:
    return Ledger(target, SystemClock(), anchor_path=own / f"{tag}.anchor",
                  key_path=own / f"{tag}.key", host_id=tag)


def _record(op: str | None, write: bool) -> AuditRecord:
    return AuditRecord(kind="decision", app_id="bench", install_id="i", op_id=op,
                       action="users.create" if write else "users.get", write=write)


def _creates(led: Ledger, n: int, key: str) -> list[float]:
    charge = Charge(key, _CHARGE_LIMIT, 3600.0)
    out = []
    for i in range(n):
        op = f"{key}-{i}"
        t0 = time.perf_counter()
        a = led.admit(_record(op, True), [charge])
        led.outcome(a.seq, op, True, None, False)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def _reads(led: Ledger, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        led.admit(_record(None, False), [])
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def _host(target: Any, own: Path, tag: str, seconds: float, start: Any, out: Any) -> None:
    led = _ledger(target, own, tag)
    _creates(led, 20, f"warm-{tag}")
    start.wait(60)
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        _creates(led, 10, f"app:{tag}:users.create")
        done += 10
    out.put(done)
    led.close()


def _aggregate(target: StoreTarget, own: Path, seconds: float) -> float:
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(HOSTS), ctx.Queue()
    procs = [ctx.Process(target=_host, args=(target, own, f"h{i}", seconds, start, out))
             for i in range(HOSTS)]
    for p in procs:
        p.start()
    total = sum(int(out.get(timeout=seconds + 120)) for _ in procs)
    for p in procs:
        p.join(60)
    return total / seconds


def _measure(name: str, target: StoreTarget, own: Path, n: int, seconds: float) -> StoreFigures:
    led = _ledger(target, own, "single")
    _creates(led, 50, "warm")  # connections, statement caches, the first pages
    creates = sorted(_creates(led, n, "app:bench:users.create"))
    reads = sorted(_reads(led, n))
    led.close()
    return StoreFigures(name, round(statistics.median(creates), 1),
                        round(creates[int(len(creates) * 0.99) - 1], 1),
                        round(statistics.median(reads), 1),
                        round(_aggregate(target, own, seconds), 1))


# Calls timed one by one per store, and seconds each host of the three creates for.
QUICK, FULL = (300, 2.0), (2000, 5.0)


def run_store_bench(url: str, *, quick: bool = False) -> list[StoreFigures]:
    """SQLite and PostgreSQL side by side (see the module docstring)."""
    from host.migrate import migrate

    n, seconds = QUICK if quick else FULL
    schema = f"stockade_bench_{secrets.token_hex(4)}"
    _in_database(url, f"CREATE SCHEMA {schema}")
    try:
        pg = with_schema(url, schema)
        migrate(pg)
        with tempfile.TemporaryDirectory(prefix="stockade-storebench-") as tmp:
            own = Path(tmp)
            return [_measure("sqlite", own / "host.db", own, n, seconds),
                    _measure("postgresql", pg, own, n, seconds)]
    finally:
        _in_database(url, f"DROP SCHEMA {schema} CASCADE")


def _in_database(url: str, statement: str) -> None:
    """One statement in the database itself (the bench's schema made or dropped). psycopg's
    errors (an unreachable server, a right refused) become the StoreError every store command
    reports in one line, not an unexpected error."""
    from host.store.pg import CONNECT_TIMEOUT_S

    try:
        import psycopg
    except ImportError:  # pragma: no cover - the extra is part of the test setup
        raise StoreError("PostgreSQL stores need the `postgresql` extra "
                         "(pip install 'stockade[postgresql]')") from None
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as c:
            c.execute(statement.encode())
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(first) from None
