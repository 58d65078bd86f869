"""`stockade bench --soak MINUTES [--rate N]` and `stockade bench --load`: the long runs of
`host/bench/soak.py` and `host/bench/load.py`, printed.

A benchmark, not a test: the target (RSS slope over the second half) is reported as met or not
met and the exit status is 0 either way; a missing confinement layer is the usual refusal.
"""
from __future__ import annotations

from rich.table import Table

from host.cli.output import emit_json, err_console, fail


def soak_command(minutes: float, rate: float, degraded: bool, json_out: bool) -> None:
    from host.bench.soak import run_soak
    from host.supervise.child import LayerMissing

    if minutes <= 0 or rate <= 0:
        fail("--soak MINUTES and --rate must be above 0", "for example: --soak 30 --rate 5")
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


def load_command(rates: str, step_s: float, degraded: bool, json_out: bool) -> None:
    from host.bench.load import MAX_DELAY_P99_MS, LoadStep, run_load
    from host.supervise.child import LayerMissing

    try:
        steps = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        fail(f"--rates {rates!r} is not a list of numbers", "for example: --rates 10,20,50")
    if not steps or min(steps) <= 0 or step_s <= 0:
        fail("--rates and --step-seconds must be above 0", "for example: --rates 10,20,50")

    def said(step: LoadStep) -> None:
        err_console.print(
            f"  {step.rate:5.1f}/s: kept {step.achieved_per_s}/s, event delay p50 "
            f"{step.delay_ms_p50} ms p99 {step.delay_ms_p99} ms, REST p99 {step.rest_ms_p99} ms,"
            f" dropped {step.dropped}, failed {step.failed_requests},"
            f" host CPU {step.host_cpu_ms_per_conversation} ms/conversation"
            f" -> {'sustained' if step.sustained else 'not sustained'}", highlight=False)

    err_console.print(f"load: {', '.join(f'{r:g}' for r in steps)} conversations/s, "
                      f"{step_s:g} s each, through the REST API ...", highlight=False)
    try:
        result = run_load(steps, step_s, degraded=degraded, on_step=said)
    except LayerMissing as exc:
        fail(str(exc), "run `stockade doctor`; or pass --degraded to measure anyway")
    err_console.print(
        f"sustained: {result.sustained_per_s:g} conversations/s with event delay p99 <= "
        f"{MAX_DELAY_P99_MS:g} ms (target >= {result.target_per_s:g}: "
        f"{'met' if result.met else 'not met'})", highlight=False)
    if json_out:
        emit_json(result.to_json())
