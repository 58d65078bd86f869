"""`stockade bench --scale`: do a call's costs stay flat as the audit log, a quota window and
the installed apps grow? (issue 27's growth targets)

One temporary home walks through four states, each measured with the bench's own apps (reads
and creates timed inside a confined app, as in `host.bench.bridge`):

1. the audit log at `audit_small` records, the creator's quota window at about 10 units,
   the bench's 6 apps installed;
2. the quota window filled to `window_big` units (creates through the bridge, as any app);
3. the audit log grown to `audit_big` records (chained records appended while no host runs:
   copies of the log's own newest bodies, hashed onto the chain, anchored), then
   `audit verify` of the whole chain timed;
4. `apps_big` more apps installed, started and idle: the host's own memory growth, a fan-out
   of one event to all of them (with its CPU: the apps' an event, the host's a fan-out, and
   the least wall time both allow on this machine's cores), and reads and creates again.

Each growth target compares two neighbouring states (only one thing changed between them).
The states follow each other in time, so a shared machine's load moves between them: the
load average is printed with the figures. Then `host.bench.growth` measures the ledger's part of
a create (the only part whose work could depend on the log or the window) on small and big
stores side by side, alternating, which the load cannot bias.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from host.bench import bridge
from host.bench.apps import BenchInstalls, install_bench_apps, install_fanout
from host.bench.growth import measure_growth
from host.bench.stats import p50, p99
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import AuditLog, chain_hash
from host.runtime import Host, HostConfig


@dataclass(frozen=True)
class ScaleSizes:
    audit_small: int
    audit_big: int
    window_small: int
    window_big: int
    apps_big: int
    reads: int  # per batch; three batches, the median of their medians
    creates: int  # likewise; each is one more unit in the window (10 → 10 + 3×creates)
    fanout: int
    fanout_warmup: int
    ledger_samples: int  # per block of the interleaved in-process comparison (host.bench.growth)


FULL = ScaleSizes(audit_small=10_000, audit_big=1_000_000, window_small=10, window_big=10_000,
                  apps_big=200, reads=2_000, creates=100, fanout=300, fanout_warmup=10,
                  ledger_samples=2_000)
QUICK = ScaleSizes(audit_small=10_000, audit_big=100_000, window_small=10, window_big=2_000,
                   apps_big=200, reads=1_000, creates=100, fanout=100, fanout_warmup=5,
                   ledger_samples=1_000)

# (key, what, how the target is stated, bound, op); ratios are the later state over the earlier.
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("read_audit_ratio", "read p50, audit log small → big", "≤ 1.2×", 1.2),
    ("create_audit_ratio", "create p50, audit log small → big", "≤ 1.2×", 1.2),
    ("create_window_ratio", "create p50, quota window small → big", "≤ 1.2×", 1.2),
    ("read_apps_ratio", "read p50, 6 → 6+N apps installed and running", "≤ 1.2×", 1.2),
    ("create_apps_ratio", "create p50, 6 → 6+N apps installed and running", "≤ 1.2×", 1.2),
    ("ledger_audit_ratio", "a create's ledger work, audit log small → big, interleaved",
     "≤ 1.2×", 1.2),
    ("ledger_window_ratio", "a create's ledger work, window small → big, interleaved",
     "≤ 1.2×", 1.2),
    ("audit_verify_s", "`audit verify` of the big log", "≤ 10 s", 10.0),
    ("host_mib_idle_apps", "host's own memory growth with N idle apps", "≤ 200 MiB", 200.0),
    ("fanout_big_ms_p99", "one event to N apps until all finished, p99", "≤ 8 ms", 8.0),
)

StepHook = Callable[[str], None]


def run_scale(sizes: ScaleSizes, *, on_step: StepHook | None = None,
              degraded: bool = False, host_core: bool = True) -> dict[str, float]:
    """Every figure of the scale run, in a fresh temporary home (removed afterwards)."""
    step = on_step or (lambda _label: None)
    out: dict[str, float] = {"load_avg_1m_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="stockade-scale-") as tmp:
        home = Home(Path(tmp) / "home").ensure()
        step("install the bench apps")
        installs = install_bench_apps(home, Path(tmp) / "apps", 0, policy_fanout=sizes.apps_big)
        pad_audit(home, sizes.audit_small)
        creator = _Creator(installs)
        with _host(home, degraded, host_core) as host:
            uid = bridge.make_target_user(host)
            step(f"audit {sizes.audit_small:,}, window {sizes.window_small}")
            creator.create(host, sizes.window_small)
            small = _measure(host, creator, uid, sizes)
            out["window_units_small"] = sizes.window_small
            step(f"fill the quota window to {sizes.window_big:,}")
            creator.create(host, sizes.window_big - creator.units)
            out["window_units_big"] = creator.units
            big_window = _measure(host, creator, uid, sizes)
        step(f"grow the audit log to {sizes.audit_big:,}")
        pad_audit(home, sizes.audit_big)
        step("audit verify")
        out["audit_verify_s"] = time_verify(home)
        with _host(home, degraded, host_core) as host:
            step(f"audit {sizes.audit_big:,}")
            big_audit = _measure(host, creator, uid, sizes)
            rss0 = _rss_mib()  # the host's own, 6 apps running
        step(f"install {sizes.apps_big} more apps")
        fans = install_fanout(home, Path(tmp) / "apps", sizes.apps_big)
        with _host(home, degraded, host_core) as host:
            step(f"start {sizes.apps_big} apps, fan out to them")
            fan = bridge.measure_fanout(host, len(fans), sizes.fanout, sizes.fanout_warmup)
            out["host_mib_idle_apps"] = _rss_mib() - rss0
            out["fanout_big_ms_p50"], out["fanout_big_ms_p99"] = p50(fan), p99(fan)
            cpu = bridge.measure_fanout_cpu(host, fans, sizes.fanout)
            out.update({f"fanout_big_{k}": v for k, v in cpu.items()})
            step(f"{sizes.apps_big} apps running")
            many_apps = _measure(host, creator, uid, sizes)
    out.update({f"read_us_p50_{k}": v[0] for k, v in (
        ("small", small), ("window", big_window), ("audit", big_audit), ("apps", many_apps))})
    out.update({f"create_us_p50_{k}": v[1] for k, v in (
        ("small", small), ("window", big_window), ("audit", big_audit), ("apps", many_apps))})
    out["create_window_ratio"] = big_window[1] / small[1]
    out["read_audit_ratio"] = big_audit[0] / big_window[0]
    out["create_audit_ratio"] = big_audit[1] / big_window[1]
    out["read_apps_ratio"] = many_apps[0] / big_audit[0]
    out["create_apps_ratio"] = many_apps[1] / big_audit[1]
    step("the ledger's part, small and big side by side")
    out.update(measure_growth(sizes.audit_small, sizes.audit_big, sizes.window_small,
                              sizes.window_big, samples=sizes.ledger_samples))
    out["load_avg_1m_end"] = os.getloadavg()[0]
    return {k: round(float(v), 3) for k, v in out.items()}


def met(figures: dict[str, float]) -> dict[str, bool]:
    return {key: figures[key] <= bound for key, _what, _text, bound in TARGETS}


@contextmanager
def _host(home: Home, degraded: bool, host_core: bool = True) -> Iterator[Host]:
    host = Host(home, config=HostConfig(use_zygote=True, degraded=degraded, watch=False,
                                        host_core=host_core))
    try:
        yield host.start()
    finally:
        host.stop()


def _measure(host: Host, creator: _Creator, uid: str,
             sizes: ScaleSizes) -> tuple[float, float]:
    """(read p50, create p50) in µs: the median of three batches' medians each."""
    bridge.measure_reads(host, creator.installs, uid, 200, 200)  # warm this host's path
    reads = [p50(bridge.measure_reads(host, creator.installs, uid, sizes.reads, 0))
             for _ in range(3)]
    creates = [p50(creator.create(host, sizes.creates)) for _ in range(3)]
    return p50(reads), p50(creates)


class _Creator:
    """The creator app's creates, each one more unit in its quota window (an hour long, so
    none expires during a run); usernames never repeat across the run's hosts."""

    def __init__(self, installs: BenchInstalls) -> None:
        self.installs = installs
        self.units = 0

    def create(self, host: Host, count: int) -> list[float]:
        runner = host.runners[self.installs.creator.install_id]
        samples: list[float] = []
        while count > 0:
            n = min(count, bridge.MAX_BATCH)
            samples += bridge.loop(runner, {"prefix": "bench-s-", "start": self.units, "n": n})
            self.units += n
            count -= n
        return samples


def pad_audit(home: Home, total: int, batch: int = 20_000) -> int:
    """Append chained records until the log holds `total` (no host may be running).

    The bodies are the log's own newest ones (the bench's reads, creates, installs), so the
    grown log looks like one that served calls; each is re-hashed onto the chain with a fresh
    seq and time, exactly as `append_in` does, and the anchor is moved to the new head.
    """
    conn = sqlite3.connect(home.host_db, isolation_level=None)
    try:
        row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = int(row[0]), str(row[1])
        bodies = [r[0] for r in conn.execute(
            "SELECT body FROM audit ORDER BY seq DESC LIMIT 256")]
        ts = time.time()
        while seq < total:
            rows = []
            for i in range(min(batch, total - seq)):
                seq += 1
                body = bodies[i % len(bodies)]
                h = chain_hash(prev, seq, ts, body)
                rows.append((seq, ts, body, prev, h))
                prev = h
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
    finally:
        conn.close()
    log = AuditLog(home.host_store, SystemClock())
    try:
        log.write_anchor()
    finally:
        log.close()
    return seq


def time_verify(home: Home) -> float:
    """Seconds for `stockade audit verify`'s walk of the whole chain (it must verify)."""
    log = AuditLog(home.host_store, SystemClock(), readonly=True)
    try:
        t0 = time.perf_counter()
        result = log.verify()
        dt = time.perf_counter() - t0
    finally:
        log.close()
    if not result.ok:
        raise RuntimeError(f"the grown audit log does not verify: {result.problem}")
    return dt


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")
