"""What the ledger's transactions would gain in a process of their own (issue 26's lever).

`stockade bench --ledger-split` runs this. At 50 conversations/s the host's audit transactions
hold the commit lock ~1 ms each, ~0.4 ms of it asleep: the `sqlite3` module gives the
interpreter lock up around every SQLite step, and each time it takes it back it waits for
whichever of the host's other threads took it meanwhile (docs/BENCH.md, "Fewer transactions").
A ledger writer in a process of its own would run its statements without that wait, at the cost
of a pipe round trip a call. Before `Ledger`'s interface is redesigned for it, this measures the
difference with the real `Ledger`, the same calls and the same contention:

- `inproc`: `callers` threads each admit a rated read as the gate does (`Ledger.admit` with a
  quota charge and an op id, then `hold_outcome` for the group commit) on one shared `Ledger`,
  pausing `GAP_S` between calls (a handler's own work), while `Load.threads` other threads keep
  the interpreter lock busy the way the host's REST, event and runner threads do: a burst of
  Python, then a wait;
- `split`: the same callers and load, but the `Ledger` lives in a spawned writer process and
  each caller sends its op id over a pipe of its own and waits for the seq.

Rounds alternate the two (the order flips each round) and each figure is the median over
rounds. The writer is a probe, not a design: it takes no install check and no seat counter (the
callables `admit` takes stay behind) and applies no persistence call, so the figures bound what
the redesign could buy on the rated-read path. CPU is the callers' process's and the writer's,
the load threads' own left out.
"""
from __future__ import annotations

import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from host.bench.cpuuse import process_cpu_s
from host.bench.stats import p50, p99
from host.clock import SystemClock
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge

# The JSON keys of `stockade bench --ledger-split --json`, in table order, and what each is.
MEANING = {
    "inproc_us_p50": "a rated read's admission, Ledger in the calling process (median)",
    "inproc_us_p99": "the same, 99th percentile",
    "inproc_per_s": "admissions a second, all callers",
    "inproc_cpu_us_per_call": "CPU a call, every process's (the load threads' left out)",
    "split_us_p50": "the same admission sent to a writer process over a pipe (median)",
    "split_us_p99": "the same, 99th percentile",
    "split_per_s": "admissions a second, all callers",
    "split_cpu_us_per_call": "CPU a call, the callers' and the writer's, both sides of the pipe",
}
KEYS = tuple(MEANING)
# (rounds, seconds a mode runs in each round) for a full and a quick run.
FULL = (3, 4.0)
QUICK = (1, 1.5)
# A handler's own work between two bridge calls (crm-sync's at 35/s: a few ms a call).
GAP_S = 0.002
CALLERS = 6  # the load bench's six apps, one runner thread each
# Every call takes a unit, as a rated read does. Never full within a run: the gap caps the
# callers at 3 000 calls/s, at most 72 000 in a full run's 24 s.
_QUOTA = Charge("install:probe:*", 100_000, 600.0, "install")
_SEQ = struct.Struct("<q")


@dataclass(frozen=True)
class Load:
    """Threads that keep the interpreter lock busy: each runs Python for `burst_us`, then
    sleeps `pause_us`. The default (3 × 15 %) holds the lock ~45 % of the time, as py-spy
    measured the host's threads doing at 50 conversations/s (40-55 %)."""

    threads: int = 3
    burst_us: int = 150
    pause_us: int = 850


@dataclass(frozen=True)
class ModeRun:
    """One mode's run: every call's latency (s); the CPU (s) of every process taking part,
    the load threads' own left out."""

    latencies: tuple[float, ...]
    cpu_s: float
    seconds: float
    writer_pid: int | None


def admit_read(ledger: Ledger, op_id: str) -> int:
    """A rated read's two ledger calls as the gate makes them; returns the decision's seq."""
    record = AuditRecord(kind="decision", allowed=True, code="allow", app_id="probe",
                         install_id="probe", action="users.get", op_id=op_id,
                         rules=("permit.read",), policy_rev="0" * 64,
                         args_digest=digest_args({"op": op_id}), write=False)
    admission = ledger.admit(record, [_QUOTA])
    ledger.hold_outcome(admission.seq, op_id, "probe", "probe", "users.get")
    return admission.seq


def _writer(db_path: str, conns: list[Connection]) -> None:
    """The writer process (`python -m host.bench.ledgersplit DB FD...`): answer each caller's op
    id with its seq until every caller's socket closes."""
    ledger = Ledger(Path(db_path), SystemClock(), group_reads=True)
    sel = selectors.DefaultSelector()
    for conn in conns:
        sel.register(conn, selectors.EVENT_READ, conn)
    open_pipes = len(conns)
    try:
        while open_pipes:
            for key, _ in sel.select():
                conn = key.data
                try:
                    op_id = conn.recv_bytes().decode()
                except EOFError:
                    sel.unregister(conn)
                    open_pipes -= 1
                    continue
                conn.send_bytes(_SEQ.pack(admit_read(ledger, op_id)))
    finally:
        ledger.close()


def _load(stop: threading.Event, load: Load, spent: list[float]) -> None:
    burst, pause = load.burst_us / 1e6, load.pause_us / 1e6
    cpu0 = time.thread_time()
    while not stop.is_set():
        end = time.perf_counter() + burst
        while time.perf_counter() < end:
            sum(range(50))
        time.sleep(pause)
    spent.append(time.thread_time() - cpu0)


def _cpu_of(writer: subprocess.Popen[bytes] | None) -> float:
    return 0.0 if writer is None else process_cpu_s(writer.pid) or 0.0


def run_mode(mode: str, db_path: Path, seconds: float, *, callers: int = CALLERS,
             load: Load = Load()) -> ModeRun:
    """Run `mode` (`inproc` or `split`) for `seconds` against the store at `db_path`."""
    if mode not in ("inproc", "split"):
        raise ValueError(f"unknown mode {mode!r}")
    ledger: Ledger | None = None
    writer: subprocess.Popen[bytes] | None = None
    ends: list[Connection] = []
    if mode == "split":
        pairs = [socket.socketpair() for _ in range(callers)]
        theirs = [b.fileno() for _, b in pairs]
        writer = subprocess.Popen(
            [sys.executable, "-m", "host.bench.ledgersplit", str(db_path), *map(str, theirs)],
            pass_fds=theirs)
        for a, b in pairs:
            b.close()  # the writer holds its own copies
            ends.append(Connection(a.detach()))
    else:
        ledger = Ledger(db_path, SystemClock(), group_reads=True)

    def call(i: int, op_id: str) -> int:
        if ledger is not None:
            return admit_read(ledger, op_id)
        try:
            ends[i].send_bytes(op_id.encode())
            seq: int = _SEQ.unpack(ends[i].recv_bytes())[0]
        except (EOFError, OSError) as exc:
            raise RuntimeError(f"the ledger probe's writer process stopped ({exc})") from exc
        return seq

    tag = f"{mode}_{time.monotonic_ns():x}"
    for i in range(callers):
        call(i, f"op_{tag}_warm_{i}")  # the writer's start and first statements, not timed
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(callers)]

    def caller(i: int) -> None:
        n, own = 0, latencies[i]
        while not stop.is_set():
            t = time.perf_counter()
            call(i, f"op_{tag}_{i}_{n}")
            own.append(time.perf_counter() - t)
            n += 1
            time.sleep(GAP_S)

    load_cpu: list[float] = []
    threads = [threading.Thread(target=_load, args=(stop, load, load_cpu), daemon=True)
               for _ in range(load.threads)]
    threads += [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
    # This process's threads end before they are counted: `process_time` keeps theirs.
    own0, writer0 = time.process_time(), _cpu_of(writer)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - own0 - sum(load_cpu) + _cpu_of(writer) - writer0
    if ledger is not None:
        ledger.close()
    for end in ends:
        end.close()
    if writer is not None:
        try:
            writer.wait(10)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()
    return ModeRun(tuple(x for own in latencies for x in own), cpu, elapsed,
                   writer.pid if writer is not None else None)


def measure_ledger_split(rounds: int, seconds: float, *, callers: int = CALLERS,
                         load: Load = Load(),
                         on_progress: Callable[[], None] | None = None) -> dict[str, float]:
    """Each key of `MEANING`: the median over `rounds`, the two modes alternating."""
    tick = on_progress or (lambda: None)
    per: dict[str, list[float]] = {k: [] for k in KEYS}
    with tempfile.TemporaryDirectory(prefix="stockade-ledgersplit-") as tmp:
        db = Path(tmp) / "host.db"
        Ledger(db, SystemClock()).close()  # the schema, before either mode races to make it
        for r in range(rounds):
            for mode in (("inproc", "split") if r % 2 == 0 else ("split", "inproc")):
                run = run_mode(mode, db, seconds, callers=callers, load=load)
                us = [x * 1e6 for x in run.latencies]
                per[f"{mode}_us_p50"].append(p50(us))
                per[f"{mode}_us_p99"].append(p99(us))
                per[f"{mode}_per_s"].append(len(us) / run.seconds)
                per[f"{mode}_cpu_us_per_call"].append(run.cpu_s * 1e6 / max(len(us), 1))
                tick()
    return {k: round(statistics.median(v), 1) for k, v in per.items()}


if __name__ == "__main__":
    _writer(sys.argv[1], [Connection(int(fd)) for fd in sys.argv[2:]])
