"""`stockade bench --soak MINUTES [--rate N]`: the long run of `host/bench/soak.py`, printed.

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
