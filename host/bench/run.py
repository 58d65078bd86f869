"""One bench run: a temporary home, the measurements in order, the figures as one dict."""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from host.bench import bridge
from host.bench.apps import BenchInstalls, install_bench_apps
from host.bench.floor import measure_floor_placed
from host.bench.rest_http import measure_rest_create
from host.bench.stats import p50, p99
from host.bench.twohosts import measure_two_hosts
from host.clock import SystemClock
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer

# The JSON keys, in the order the table shows them (issue 7; all numbers).
KEYS = (
    "floor_rtt_us_p50", "floor_rtt_us_p99", "floor_one_core_us_p50", "floor_two_cores_us_p50",
    "read_us_p50", "read_us_p99",
    "create_us_p50", "create_us_p99",
    "rest_http_create_us_p50",
    "cold_start_ms_p50", "cold_start_idle_ms_p50", "spawn_start_ms_p50",
    "idle_app_private_mib",
    "fanout50_ms_p50", "fanout50_ms_p99", "fanout50_cpu_floor_ms",
    "calls_per_s_1app", "calls_per_s_4apps", "calls_per_s_4apps_2hosts",
)


@dataclass(frozen=True)
class BenchSizes:
    """Iteration counts (measured samples; `*_warmup` samples are run first and dropped)."""

    floor: int
    floor_warmup: int
    reads: int
    read_warmup: int
    creates: int
    create_warmup: int
    throughput_calls: int  # per app per round
    throughput_rounds: int
    fanout_apps: int
    # Fan-outs measured. Its p99 is the fan-out target, and by nearest rank over 300 samples
    # that is the 4th-slowest: one burst of outside interference on a shared VM (a few slow
    # fan-outs in a row) decided it. Over 1000 it is the 11th-slowest, for about one more second.
    fanout: int
    fanout_warmup: int
    cold: int
    cold_warmup: int
    spawn: int
    spawn_warmup: int
    rest: int
    rest_warmup: int


FULL = BenchSizes(
    floor=50_000, floor_warmup=2_000, reads=20_000, read_warmup=1_000, creates=10_000,
    create_warmup=500, throughput_calls=2_000, throughput_rounds=5, fanout_apps=50, fanout=1000,
    fanout_warmup=20, cold=100, cold_warmup=10, spawn=30, spawn_warmup=3, rest=3_000,
    rest_warmup=200,
)
QUICK = BenchSizes(
    floor=10_000, floor_warmup=1_000, reads=5_000, read_warmup=500, creates=2_000,
    create_warmup=200, throughput_calls=1_000, throughput_rounds=3, fanout_apps=50, fanout=300,
    fanout_warmup=10, cold=30, cold_warmup=3, spawn=10, spawn_warmup=2, rest=1_000,
    rest_warmup=100,
)

# Step labels, in order (the CLI's progress bar counts them).
STEPS = (
    "pipe floor", "install bench apps, start host", "bridge reads", "bridge creates",
    "1 app, then 4 apps at once", "fan-out to 50 apps", "idle memory", "cold start (zygote)",
    "REST over HTTP", "start (fresh interpreter)", "4 apps over two hosts",
)

StepHook = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    degraded: bool = False  # run where a confinement layer is missing (figures say less)
    group_reads: bool = True  # off: reads' records committed one by one (the A/B in BENCH.md)
    pin_apps: bool = False  # each app's child and runner thread on one core (HostConfig)
    pin_bursts: bool = True  # ... while a handler makes many calls (HostConfig)
    host_core: bool = True  # the host's threads on one core (HostConfig)
    # The embedded server's data in a server.db of its own, as a home made before it moved into
    # host.db keeps it: a write on users, roles, agents or rooms then takes three commits (the A/B).
    server_apart: bool = False


@contextlib.contextmanager
def _host(home: Home, *, use_zygote: bool, degraded: bool,
          group_reads: bool = True, pin_apps: bool = False,
          pin_bursts: bool = True, host_core: bool = True) -> Iterator[Host]:
    host = Host(home, config=HostConfig(use_zygote=use_zygote, degraded=degraded, watch=False,
                                        group_reads=group_reads, pin_apps=pin_apps,
                                        pin_bursts=pin_bursts, host_core=host_core))
    try:
        yield host.start()
    finally:
        host.stop()


def run_bench(sizes: BenchSizes, *, options: RunOptions | None = None,
              on_step: StepHook | None = None) -> dict[str, float]:
    """Run every measurement once in a fresh temporary home (removed afterwards)."""
    opts = options or RunOptions()
    step = on_step or (lambda _label: None)
    out: dict[str, float] = {}
    labels = iter(STEPS)

    def next_step() -> None:
        step(next(labels))

    next_step()
    out.update(_floor(sizes))
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp:
        home = Home(Path(tmp) / "home").ensure()
        if opts.server_apart:
            EmbeddedServer(home.root / "server.db", SystemClock()).close()
        next_step()
        installs = install_bench_apps(home, Path(tmp) / "apps", sizes.fanout_apps)
        with _host(home, use_zygote=True, degraded=opts.degraded,
                   group_reads=opts.group_reads, pin_apps=opts.pin_apps,
                   pin_bursts=opts.pin_bursts, host_core=opts.host_core) as host:
            out.update(_through_host(host, installs, sizes, next_step))
        next_step()
        rest = measure_rest_create(home, sizes.rest, sizes.rest_warmup)
        out["rest_http_create_us_p50"] = p50(rest)
        next_step()
        with _host(home, use_zygote=False, degraded=opts.degraded,
                   host_core=opts.host_core) as host:
            spawn = bridge.measure_cold_start(host, installs.cold, sizes.spawn,
                                              sizes.spawn_warmup)
        out["spawn_start_ms_p50"] = p50(spawn)
        next_step()
        # The four readers over two host processes sharing the home: what a second core buys
        # (absent on one CPU, where there is none to buy). Last, on a host of its own: the second
        # host's writes and its processes' exit leave nothing behind for the other figures.
        with _host(home, use_zygote=True, degraded=opts.degraded,
                   group_reads=opts.group_reads, pin_apps=opts.pin_apps,
                   pin_bursts=opts.pin_bursts, host_core=opts.host_core) as host:
            uid = bridge.make_target_user(host, "bench-target-2")
            rates = measure_two_hosts(host, installs, uid, sizes.throughput_calls,
                                      sizes.throughput_rounds)
        if rates:
            out["calls_per_s_4apps_2hosts"] = p50(rates)
    # floor_two_cores_us_p50 and calls_per_s_4apps_2hosts are absent where this process may
    # use one CPU only
    return {k: round(float(out[k]), 3) for k in KEYS if k in out}


def _floor(sizes: BenchSizes) -> dict[str, float]:
    """The pipe floor in each placement, and the lower one as the floor the targets use: the
    least a round trip between two processes costs here, whichever way they are placed."""
    placed = measure_floor_placed(sizes.floor, sizes.floor_warmup)
    out = {f"floor_{name}_us_p50": p50(samples) for name, samples in placed.items()}
    least = min(placed.values(), key=p50)
    out["floor_rtt_us_p50"], out["floor_rtt_us_p99"] = p50(least), p99(least)
    return out


def _through_host(host: Host, installs: BenchInstalls, sizes: BenchSizes,
                  next_step: Callable[[], None]) -> dict[str, float]:
    out: dict[str, float] = {}
    uid = bridge.make_target_user(host)
    next_step()
    reads = bridge.measure_reads(host, installs, uid, sizes.reads, sizes.read_warmup)
    out["read_us_p50"], out["read_us_p99"] = p50(reads), p99(reads)
    next_step()
    creates = bridge.measure_creates(host, installs, sizes.creates, sizes.create_warmup)
    out["create_us_p50"], out["create_us_p99"] = p50(creates), p99(creates)
    next_step()
    # One reader alone, then four at once: how the gate's throughput scales with the apps
    # calling (docs/BENCH.md, "Four apps at once: what a read costs the host").
    for key, apps in (("calls_per_s_1app", 1), ("calls_per_s_4apps", None)):
        rates = bridge.measure_throughput(host, installs, uid, sizes.throughput_calls,
                                          sizes.throughput_rounds, apps)
        out[key] = p50(rates)
    next_step()
    fan = bridge.measure_fanout(host, len(installs.fanout), sizes.fanout, sizes.fanout_warmup)
    out["fanout50_ms_p50"], out["fanout50_ms_p99"] = p50(fan), p99(fan)
    # what the fan-out's CPU allows at best on these cores: how near the target can come
    out["fanout50_cpu_floor_ms"] = bridge.measure_fanout_cpu(
        host, installs.fanout, sizes.fanout)["cpu_floor_ms"]
    next_step()
    out["idle_app_private_mib"] = p50(bridge.measure_idle_private(host, installs.fanout))
    next_step()
    cold = bridge.measure_cold_start(host, installs.cold, sizes.cold, sizes.cold_warmup)
    out["cold_start_ms_p50"] = p50(cold)
    # The same starts on a host idle between them: back to back, the next start may take the
    # pool's replacement while it still moves into its memory cgroup (docs/BENCH.md).
    idle = bridge.measure_cold_start(host, installs.cold, sizes.cold, sizes.cold_warmup,
                                     tick=lambda: bridge.settle_pool(host))
    out["cold_start_idle_ms_p50"] = p50(idle)
    return out
