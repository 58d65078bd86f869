"""`stockade bench --soak MINUTES [--rate N]`, `stockade bench --load` and `stockade bench
--store URL`: the runs of `host/bench/soak.py`, `host/bench/load.py` and
`host/bench/storebench.py`, printed.

A benchmark, not a test: the target (RSS slope over the second half) is reported as met or not
met and the exit status is 0 either way; a missing confinement layer is the usual refusal.
"""
from __future__ import annotations

import math

from rich.table import Table

from host.cli.output import emit_json, err_console, fail


def positive(value: float) -> bool:
    """A finite number above 0: NaN compares false with everything, so `<= 0` let it through
    (a soak that never ended, a load step that failed after starting its processes)."""
    return math.isfinite(value) and value > 0


def soak_command(minutes: float, rate: float, degraded: bool, json_out: bool) -> None:
    from host.bench.soak import run_soak
    from host.supervise.child import LayerMissing

    if not (positive(minutes) and positive(rate)):
        fail("--soak MINUTES and --rate must be finite numbers above 0",
             "for example: --soak 30 --rate 5")
    err_console.print(f"soak: {minutes:g} min at {rate:g} conversations/s "
                      "(example apps, crm-sync calling a loopback CRM) ...", highlight=False)

    def tick(t: float, rss: float) -> None:
        if int(t) % 60 == 0:
            err_console.print(f"  {t / 60:5.1f} min  RSS {rss:6.1f} MiB", highlight=False)

    try:
        result = run_soak(minutes, rate, degraded=degraded, on_tick=tick)
    except LayerMissing as exc:
        fail(str(exc), "run `stockade doctor`; or pass --degraded to measure anyway")
    table = Table(title=f"stockade bench --soak {minutes:g}", title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_row("conversations (CRM received)",
                  f"{result.conversations} ({result.crm_received})")
    table.add_row("RSS start → end", f"{result.rss_start_mib} → {result.rss_end_mib} MiB")
    table.add_row("RSS growth after warm-up", f"{result.rss_growth_after_warmup_mib} MiB")
    verdict = "met" if result.met else "not met"
    table.add_row("RSS slope, second half",
                  f"{result.rss_slope_mib_min} MiB/min (target ≤ "
                  f"{result.target_slope_mib_min}: {verdict})")
    table.add_row("threads start → end", f"{result.threads_start} → {result.threads_end}")
    table.add_row("open fds start → end", f"{result.fds_start} → {result.fds_end}")
    table.add_row("HTTP clients built", str(result.http_clients_created))
    table.add_row("events dropped", str(result.events_dropped))
    err_console.print(table)
    if json_out:
        emit_json(result.to_json())


def load_command(rates: str, step_s: float, degraded: bool, json_out: bool, *,
                 pin_apps: bool = False, pin_bursts: bool = True, runs: int = 1,
                 rest_process: bool = True, host_core: bool = True,
                 server_apart: bool = False) -> None:
    from host.bench.load import MAX_DELAY_P99_MS, LoadResult, LoadStep, busiest, run_load
    from host.bench.loadruns import LoadRuns
    from host.supervise.child import LayerMissing

    try:
        steps = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        fail(f"--rates {rates!r} is not a list of numbers", "for example: --rates 10,20,50")
    if not steps or not all(positive(r) for r in (*steps, step_s)):
        fail("--rates and --step-seconds must be finite numbers above 0",
             "for example: --rates 10,20,50 --step-seconds 10")

    def said(step: LoadStep) -> None:
        err_console.print(
            f"  {step.rate:5.1f}/s: kept {step.achieved_per_s}/s, event delay p50 "
            f"{step.delay_ms_p50} ms p99 {step.delay_ms_p99} ms, REST p99 {step.rest_ms_p99} ms,"
            f" dropped {step.dropped}, failed {step.failed_requests},"
            f" CPU a conversation: host {step.host_cpu_ms_per_conversation} ms,"
            + (f" REST front {step.front_cpu_ms_per_conversation} ms,"
               if step.front_cpu_ms_per_conversation else "")
            + f" apps"
            f" {step.apps_cpu_ms_per_conversation} ms, machine"
            f" {step.machine_cpu_ms_per_conversation} ms (the host fills one core at"
            f" {step.host_one_core_per_s:g}/s, all of it the cores at {step.cpu_bound_per_s:g}/s)"
            + (f", queues peaked at {waited}" if (waited := busiest(step.queue_peaks)) else "")
            + f" -> {'sustained' if step.sustained else 'not sustained'}", highlight=False)

    results: list[LoadResult] = []
    for n in range(runs):
        err_console.print(f"load{f' (run {n + 1}/{runs})' if runs > 1 else ''}: "
                          f"{', '.join(f'{r:g}' for r in steps)} conversations/s, "
                          f"{step_s:g} s each, through the REST API "
                          f"({'in a front process' if rest_process else 'in the host'})"
                          + (", the server's data in a server.db apart" if server_apart else "")
                          + " ...",
                          highlight=False)
        try:
            results.append(run_load(steps, step_s, degraded=degraded, pin_apps=pin_apps,
                                    pin_bursts=pin_bursts, rest_process=rest_process,
                                    host_core=host_core, server_apart=server_apart,
                                    on_step=said))
        except LayerMissing as exc:
            fail(str(exc), "run `stockade doctor`; or pass --degraded to measure anyway")
    summary: LoadResult | LoadRuns = results[0] if runs == 1 else LoadRuns(results)
    if isinstance(summary, LoadRuns):
        for rate in summary.rates():
            err_console.print(
                f"  {rate.rate:5.1f}/s: held in {rate.held} of {rate.runs} runs (medians: event "
                f"delay p99 {rate.delay_ms_p99_median} ms, host CPU a conversation "
                f"{rate.host_cpu_ms_per_conversation_median} ms)", highlight=False)
    err_console.print(
        f"sustained: {summary.sustained_per_s:g} conversations/s with event delay p99 <= "
        f"{MAX_DELAY_P99_MS:g} ms" + (f", in more than half of {runs} runs" if runs > 1 else "")
        + f" (target >= {summary.target_per_s:g}: {'met' if summary.met else 'not met'})",
        highlight=False)
    if json_out:
        emit_json(summary.to_json())


def store_command(url: str, quick: bool, json_out: bool) -> None:
    from host.bench.storebench import HOSTS, run_store_bench
    from host.home import scrub_url_secrets
    from host.store import STORE_FAILURES, describe

    err_console.print(f"store: the ledger on SQLite and on {describe(url)} ...", highlight=False)
    try:
        figures = run_store_bench(url, quick=quick)
    except STORE_FAILURES as exc:
        # The driver's message may quote the URL's password (libpq's parse errors do).
        fail(f"cannot bench the store at {describe(url)}: {scrub_url_secrets(str(exc), url)}",
             "check the URL and that the server is running; the user needs the right to create "
             "(and drop) a schema in that database")
    table = Table(title="stockade bench --store", title_justify="left")
    for col in ("figure", *(f.store for f in figures), "ratio"):
        table.add_column(col, justify="right" if col != "figure" else "left", no_wrap=True)
    sqlite, pg = figures
    for key, what in (("create_us_p50", "create: admit + outcome (µs, median)"),
                      ("create_us_p99", "create (µs, 99th percentile)"),
                      ("read_us_p50", "read: one decision record (µs, median)"),
                      ("hosts3_creates_per_s", f"{HOSTS} hosts' creates a second, together")):
        a, b = getattr(sqlite, key), getattr(pg, key)
        table.add_row(what, f"{a:,.1f}", f"{b:,.1f}", f"{b / a:.2f}×" if a else "-")
    err_console.print(table)
    if json_out:
        emit_json({"stores": [f.to_json() for f in figures]})
