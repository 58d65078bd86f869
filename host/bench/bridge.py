"""Measurements through a running `Host`: bridge reads and creates, throughput, fan-out, start.

Every app here is installed like any other (package, consent, grants) and runs in its own
confined child under the home's policy. Loops run inside the apps (see `host.bench.apps`);
fan-out and start times are taken on the host side with `time.perf_counter`.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from host.apps.installs import InstallRecord
from host.bench.apps import FANOUT_EVENT, LOOP_EVENT, BenchInstalls
from host.bench.cpuuse import cores, grown_s, process_cpu_s, tree_cpu_s
from host.runtime import Host
from host.server.principals import SYSTEM
from host.supervise.delivery import Delivery
from host.supervise.supervisor import AppRunner

# Generous deadlines: a slow machine must finish the bench, not have it killed.
LOOP_DEADLINE_S = 120.0
EVENT_DEADLINE_S = 30.0
# Reads a reader makes before it is measured in a throughput round.
WARM_CALLS = 50
# One handler returns at most this many durations (the wire caps a list at 2048 items).
MAX_BATCH = 2000

FANOUT_PAYLOAD: dict[str, Any] = {
    "room": {"id": "r_bench", "open": True, "department": None, "agent_id": None},
    "visitor": {"id": "v_bench", "name": "Bench Visitor", "token": "bench-visitor-token"},
}


def _runner(host: Host, install: InstallRecord) -> AppRunner:
    return host.runners[install.install_id]


def _batches(total: int) -> list[int]:
    out = [MAX_BATCH] * (total // MAX_BATCH)
    if total % MAX_BATCH:
        out.append(total % MAX_BATCH)
    return out


def loop(runner: AppRunner, payload: dict[str, Any]) -> list[float]:
    """Run one measuring loop in the app; its durations in µs."""
    result = runner.submit(LOOP_EVENT, payload, LOOP_DEADLINE_S).result(LOOP_DEADLINE_S + 10)
    if not isinstance(result, list):
        raise RuntimeError(f"{runner.app_id}: the bench handler returned {type(result).__name__}")
    return [float(x) * 1e6 for x in result]


def make_target_user(host: Host, username: str = "bench-target") -> str:
    """The user the readers read (created by the system, outside any app)."""
    return str(host.server.users_create(SYSTEM, username, "Bench Target", "user")["id"])


def measure_reads(host: Host, installs: BenchInstalls, uid: str, iterations: int,
                  warmup: int) -> list[float]:
    """Microseconds per `ctx.users.get(uid)` as the app times it."""
    runner = _runner(host, installs.readers[0])
    loop(runner, {"uid": uid, "n": warmup})
    samples: list[float] = []
    for n in _batches(iterations):
        samples += loop(runner, {"uid": uid, "n": n})
    return samples


def measure_creates(host: Host, installs: BenchInstalls, iterations: int,
                    warmup: int) -> list[float]:
    """Microseconds per `ctx.users.create(...)` (policy, quota, seat, audit, server write)."""
    runner = _runner(host, installs.creator)
    start = 0
    loop(runner, {"prefix": "bench-w-", "start": start, "n": warmup})
    samples: list[float] = []
    for n in _batches(iterations):
        samples += loop(runner, {"prefix": "bench-c-", "start": start, "n": n})
        start += n
    return samples


def measure_throughput(host: Host, installs: BenchInstalls, uid: str, calls_per_app: int,
                       rounds: int, apps: int | None = None) -> list[float]:
    """Bridge reads per second, the first `apps` readers (all four by default) calling at
    once; one figure per round."""
    runners = [_runner(host, rec) for rec in installs.readers[:apps]]
    warm(runners, uid)
    rates: list[float] = []
    for _ in range(rounds):
        t0, t1, made = reads_at_once(runners, uid, calls_per_app)
        rates.append(made / (t1 - t0))
    return rates


def warm(runners: Sequence[AppRunner], uid: str) -> None:
    """Every reader's child started and through its reading loop once."""
    for r in runners:
        loop(r, {"uid": uid, "n": WARM_CALLS})


def reads_at_once(runners: Sequence[AppRunner], uid: str,
                  calls: int) -> tuple[float, float, int]:
    """Every reader's loop of `calls` reads (at most a batch) at once: (start, end, calls
    made), by `time.monotonic`, the machine's clock, the same in every process."""
    n = min(calls, MAX_BATCH)
    t0 = time.monotonic()
    futures = [r.submit(LOOP_EVENT, {"uid": uid, "n": n}, LOOP_DEADLINE_S) for r in runners]
    for f in futures:
        f.result(LOOP_DEADLINE_S + 10)
    return t0, time.monotonic(), n * len(runners)


def _settle(delivery: Delivery) -> None:
    if not delivery.wait(EVENT_DEADLINE_S + 10):
        raise RuntimeError(f"{len(delivery.pending())} handlers did not finish")
    delivery.results()  # raises the first handler's failure


def measure_fanout(host: Host, expected: int, iterations: int, warmup: int) -> list[float]:
    """Milliseconds from `host.dispatch` of one post event until every handler has finished."""
    samples: list[float] = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter_ns()
        delivery = host.dispatch(FANOUT_EVENT, FANOUT_PAYLOAD)
        _settle(delivery)
        dt = time.perf_counter_ns() - t0
        if len(delivery) != expected:
            raise RuntimeError(f"the event reached {len(delivery)} apps, not {expected}")
        if i >= warmup:
            samples.append(dt / 1e6)
    return samples


def measure_fanout_cpu(host: Host, installs: Sequence[InstallRecord],
                       iterations: int) -> dict[str, float]:
    """What `iterations` fan-outs to `installs` cost in CPU, from the kernel's accounting:
    each app's CPU an event (`apps_cpu_us`), the host process's a fan-out (`host_cpu_ms`), and
    the least wall time a fan-out could take with both spread over every core
    (`cpu_floor_ms`): the bound no scheduling can beat on this machine."""
    pids = [c.pid for c in (host.runners[r.install_id].child for r in installs)
            if c is not None and not c.dead]
    apps0, host0 = tree_cpu_s(pids), process_cpu_s(os.getpid()) or 0.0
    measure_fanout(host, len(installs), iterations, 0)
    apps_s = grown_s(apps0, tree_cpu_s(pids))
    host_s = (process_cpu_s(os.getpid()) or 0.0) - host0
    return {"apps_cpu_us": apps_s / (iterations * len(installs)) * 1e6,
            "host_cpu_ms": host_s / iterations * 1e3,
            "cpu_floor_ms": (apps_s + host_s) / iterations / cores(host) * 1e3}


def private_mib(pid: int) -> float:
    """Private (unshared) memory of a process: Private_Clean + Private_Dirty, in MiB."""
    total_kib = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Private_Clean", "Private_Dirty"):
            total_kib += int(rest.split()[0])
    return total_kib / 1024.0


def measure_idle_private(host: Host, installs: Sequence[InstallRecord]) -> list[float]:
    """Private MiB of each running, idle child of `installs` (they have handled events)."""
    out: list[float] = []
    for rec in installs:
        child = host.runners[rec.install_id].child
        if child is not None and not child.dead:
            out.append(private_mib(child.pid))
    if not out:
        raise RuntimeError("no running app child to measure")
    return out


# Between starts timed on an idle host (`settle_pool`): long enough for the pool's replacement
# to move into its memory cgroup (a cgroup v1 move waits for an RCU grace period: 5-13 ms on
# the bench's VM) and confine itself, with room for a loaded machine.
IDLE_GAP_S = 0.1


def settle_pool(host: Host) -> None:
    """Wait until the host's pre-fork pool is full again and its newest child had time to
    confine itself: the next start meets a host that was idle, as one app's install or
    enable does (`measure_cold_start`'s `tick`)."""
    pool = host.spawner.pool if host.spawner is not None else None
    if pool is not None:
        pool.wait_ready(5.0)
    time.sleep(IDLE_GAP_S)


def measure_cold_start(host: Host, install: InstallRecord, iterations: int, warmup: int,
                       tick: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds from handing a fresh runner its first event until the app answered it.

    Covers the host's whole start path (`Host.start_child`): a confined child (zygote fork or
    fresh interpreter, per the host's config), a signed token, the handshake and its verify,
    reading the package, compiling the app inside the child, then the event itself.
    """
    samples: list[float] = []
    for i in range(warmup + iterations):
        runner = AppRunner(host, install)  # its thread waits on an empty queue
        try:
            t0 = time.perf_counter_ns()
            runner.submit(LOOP_EVENT, {}, EVENT_DEADLINE_S).result(EVENT_DEADLINE_S + 10)
            dt = time.perf_counter_ns() - t0
        finally:
            runner.stop("bench: cold start measured")
        if i >= warmup:
            samples.append(dt / 1e6)
        if tick is not None:
            tick()
    return samples
