"""`stockade bench [--quick] [--json] [--write-floor | --ledger-split | ...]`: what a bridge
call costs, and what an app costs to run.

Runs in a temporary home of its own (the operator's home is never touched), prints a table with
each target met / not met on stderr, and with `--json` one JSON object on stdout. Unmet targets
are reported, never an error: this is a benchmark, not a test.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from host.cli.bench_flags import DEFAULT, misplaced
from host.cli.output import emit_json, err_console, fail
from host.inert import host

if TYPE_CHECKING:
    from host.bench import BenchSizes, RunOptions

# `--pairs`: most runs one command makes (a full run with the peer takes about a minute each).
MAX_PAIRS = 9

_UNITS = {"_us_": "µs", "_ms_": "ms", "_mib": "MiB", "_per_s_": "/s"}

_MEANING = {
    "floor_rtt_us_p50": "pipe round trip, two processes, no gate: the lower placement's median",
    "floor_rtt_us_p99": "pipe round trip, that placement (99th percentile)",
    "floor_one_core_us_p50": "pipe round trip, both processes pinned to one core (median)",
    "floor_two_cores_us_p50": "pipe round trip, the two pinned to two cores (median)",
    "read_us_p50": "ctx.users.get through the gate, timed in the app (median)",
    "read_us_p99": "ctx.users.get (99th percentile)",
    "create_us_p50": "ctx.users.create: policy, quota, seat, audit, write (median)",
    "create_us_p99": "ctx.users.create (99th percentile)",
    "rest_http_create_us_p50": "users.create over loopback HTTP, keep-alive client (median)",
    "cold_start_ms_p50": "app start until its first event is answered, zygote (median)",
    "cold_start_idle_ms_p50": "the same, each start on a host idle for 0.1 s (median)",
    "spawn_start_ms_p50": "the same through a fresh interpreter (median)",
    "idle_app_private_mib": "private memory of one idle app child (median over apps)",
    "fanout50_ms_p50": "one post event to 50 apps until all handlers finished (median)",
    "fanout50_ms_p99": "the same (99th percentile)",
    "fanout50_cpu_floor_ms": "the apps' and host's CPU for one such fan-out, over the cores",
    "calls_per_s_1app": "bridge reads per second, 1 app calling alone",
    "calls_per_s_4apps": "bridge reads per second, 4 apps calling at once",
    "calls_per_s_4apps_2hosts": "the same 4 apps over two host processes sharing the home",
    "peer_read_us_p50": "Apps-Engine: an app's read.getUserReader().getById round trip",
    "peer_cold_ms_p50": "Apps-Engine: spawn to an app's first answer",
}


def _unit(key: str) -> str:
    for marker, unit in _UNITS.items():
        if marker in key or key.endswith(marker.rstrip("_")):
            return unit
    return ""


def render_table(figures: Mapping[str, float], title: str, *, wide: bool) -> Table:
    """The figures with their targets; `wide` adds what each figure measures."""
    from host.bench import KEYS, Target, targets_for
    from host.bench.peer import PEER_KEYS

    table = Table(title=title, title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    if wide:
        table.add_column("what")
    table.add_column("target")
    table.add_column("", no_wrap=True, min_width=7)
    for key in (*KEYS, *PEER_KEYS):
        if key not in figures:  # a peer figure without --peer; two cores on one CPU
            continue
        value = figures[key]
        what = [_MEANING[key]] if wide else []
        targets: list[Target | None] = [*targets_for(key, figures)] or [None]
        for i, target in enumerate(targets):
            verdict = host("")
            goal = ""
            if target is not None:
                bound = f"{target.bound(figures):,.1f}"
                goal = f"{target.text} = {bound}" if target.ref else target.text
                verdict = (host("met", "green") if target.met(figures)
                           else host("not met", "red"))
            if i == 0:
                table.add_row(key, f"{value:,.1f} {_unit(key)}", *what, goal, verdict)
            else:
                table.add_row("", "", *([""] if wide else []), goal, verdict)
    return table


def bench(
    ctx: typer.Context,
    quick: bool = typer.Option(False, "--quick", help="Fewer iterations (under a minute)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    degraded: bool = typer.Option(
        False, "--degraded", help="Run the apps even if a confinement layer is missing."),
    peer: Path | None = typer.Option(
        None, "--peer", metavar="DIR",
        help="Also measure Rocket.Chat's Apps-Engine built in DIR (../shared/anchors/apps-engine"
        "/setup.sh DIR), right after Stockade, for the peer ratios."),
    peer_anchor: Path | None = typer.Option(
        None, "--peer-anchor", metavar="DIR",
        help="The anchor's folder (with run.sh); default: $STOCKADE_PEER_ANCHOR, else the first "
        "shared/anchors/apps-engine above this checkout."),
    scale: bool = typer.Option(
        False, "--scale",
        help="Instead: read and create cost as the audit log, a quota window and the installed "
        "apps grow; audit verify; host memory and fan-out with 200 apps (slow: minutes)."),
    write_floor: bool = typer.Option(
        False, "--write-floor",
        help="Instead: the SQL a create must commit, alone (the least any create can cost)."),
    ledger_split: bool = typer.Option(
        False, "--ledger-split",
        help="Instead: a rated read's admission under a busy interpreter lock, with the ledger "
        "in the calling process and in a writer process over a pipe (issue 26's lever)."),
    soak: float | None = typer.Option(
        None, "--soak", metavar="MINUTES",
        help="Instead: a long run with the example apps, reporting RSS slope, threads, fds."),
    rate: float = typer.Option(5.0, "--rate", help="Conversations a second for --soak."),
    load: bool = typer.Option(
        False, "--load",
        help="Instead: conversations through the REST API at rising rates; the sustained rate."),
    step_seconds: float = typer.Option(10.0, "--step-seconds", help="Seconds per --load rate."),
    rates: str = typer.Option("10,20,35,50,70", "--rates", help="--load's rates, a second."),
    pin_apps: bool = typer.Option(
        False, "--pin-apps", help="Measure with each app's child and runner thread on one core "
        "(`stockade serve --pin-apps`); with --load too."),
    pin_bursts: bool = typer.Option(
        True, "--pin-bursts/--no-pin-bursts", help="Pin a pair only while its handler makes "
        "many calls (the default; `--no-pin-bursts`: never, for the A/B); with --load too."),
    host_core: bool = typer.Option(
        True, "--host-core/--no-host-core", help="The host's threads on one core (the "
        "default, as `stockade serve`; `--no-host-core`: anywhere, for the A/B); with --load "
        "too."),
    server_apart: bool = typer.Option(
        False, "--server-db-apart", help="The embedded server's data in a server.db of its "
        "own, as a home made before it moved into host.db keeps it (a write on users, roles, "
        "agents or rooms then takes three commits, not one transaction), for the A/B; with --load "
        "too."),
    rest_process: bool = typer.Option(
        True, "--rest-process/--rest-in-host", help="With --load: the REST API in a process of "
        "its own beside the host, as `stockade serve` runs it (the default), or in the host's "
        "process (`serve --rest-in-host`)."),
    rocketchat: bool = typer.Option(
        False, "--rocketchat",
        help="Instead: a read through the remote adapter next to the same REST call made "
        "directly with httpx, both over loopback to a stand-in workspace process."),
    pairs: int = typer.Option(
        1, "--pairs", min=1, max=MAX_PAIRS, metavar="N",
        help="Measure N times (with --peer: Stockade, then the peer, N times over) and report "
        "each figure's median, the targets judged on the medians; --json adds each run. With "
        "--load: each rate's runs held, a rate sustained when held in more than half."),
) -> None:
    """Measure bridge calls against the pipe floor and the REST API, app start, memory, fan-out.

    Uses a temporary home of its own; progress and the table go to stderr. With `--store
    postgresql://…` on the command line (never STOCKADE_STORE or the home's store.toml):
    instead, the ledger's costs on SQLite and on that database side by side, and three hosts'
    aggregate creates a second on each (a schema of its own, dropped after).
    """
    store_url = typed_store(ctx)
    # The benches that run instead of the default one: each measures something else, so two
    # at once, or the peer beside one, would run only the first and drop the rest unsaid.
    modes = [flag for flag, on in (
        ("--store", store_url is not None),
        ("--write-floor", write_floor), ("--ledger-split", ledger_split), ("--scale", scale),
        ("--rocketchat", rocketchat), ("--load", load), ("--soak", soak is not None)) if on]
    if len(modes) > 1:
        fail(f"{modes[0]} and {modes[1]} are two different benches", "run one at a time")
    if peer is not None and modes:
        fail(f"--peer measures the Apps-Engine beside the default bench; {modes[0]} does not "
             "use it", f"run --peer without {modes[0]}, or {modes[0]} without --peer")
    wrong = misplaced(ctx, modes[0] if modes else DEFAULT)
    if wrong is not None:
        fail(f"{wrong[0]} has no effect on " + (modes[0] if modes else "the default bench"),
             f"{wrong[0]} applies to: {wrong[1]}")
    other = [flag for flag in modes if flag != "--load"]  # --load --pairs N: N runs of rates
    if pairs > 1 and other:
        fail(f"--pairs repeats the bridge figures (and the peer's); {other[0]} measures "
             "something else", f"run {other[0]} on its own, or --pairs without it")
    if store_url is not None:
        from host.cli.bench_soak_cmd import store_command

        store_command(store_url, quick, json_out)
        return
    if write_floor:
        _write_floor(quick, json_out)
        return
    if ledger_split:
        _ledger_split(quick, json_out)
        return
    if scale:
        from host.cli.bench_scale_cmd import scale_command

        scale_command(quick, degraded, json_out, host_core=host_core)
        return
    if rocketchat:
        _rocketchat(quick, degraded, json_out)
        return
    if load:
        from host.cli.bench_soak_cmd import load_command

        load_command(rates, step_seconds, degraded, json_out, pin_apps=pin_apps,
                     pin_bursts=pin_bursts, runs=pairs, rest_process=rest_process,
                     host_core=host_core, server_apart=server_apart)
        return
    if soak is not None:
        from host.cli.bench_soak_cmd import soak_command

        soak_command(soak, rate, degraded, json_out)
        return
    from host.bench import RunOptions
    from host.bench import run as bench_run
    from host.bench.stats import median_figures

    sizes = bench_run.QUICK if quick else bench_run.FULL
    anchor_run = _find_anchor(peer_anchor) if peer is not None else None
    if peer is not None and anchor_run is not None:
        _check_peer(peer, anchor_run)
    runs: list[dict[str, float]] = []
    for n in range(pairs):
        figures = _one_run(sizes, RunOptions(degraded=degraded, pin_apps=pin_apps,
                                             pin_bursts=pin_bursts, host_core=host_core,
                                             server_apart=server_apart),
                           f"{n + 1}/{pairs} " if pairs > 1 else "")
        if peer is not None:
            figures.update(_peer_figures(peer, anchor_run, quick))
        runs.append(figures)
    figures = median_figures(runs)
    mode = ("quick" if quick else "full") + (", apps pinned" if pin_apps else
                                             "" if pin_bursts else ", bursts not pinned") \
        + ("" if host_core else ", host's threads on every core") \
        + (", server.db apart" if server_apart else "")
    if pairs > 1:
        mode += f", medians of {pairs} " + ("pairs with the peer" if peer else "runs")
    err_console.print(render_table(figures, f"stockade bench ({mode})",
                                   wide=err_console.width >= 140))
    if json_out:
        emit_json(figures if pairs == 1 else {**figures, "runs": runs})


def typed_store(ctx: typer.Context) -> str | None:
    """The URL of a `--store` typed on this command line, else None. The bench works in a
    temporary home of its own, so the operator's store (STOCKADE_STORE, the home's store.toml)
    is never what it measures: the store bench creates and drops a schema in the database it is
    given, which only an explicit `--store` may ask for."""
    parent = ctx.parent
    # By name: typer runs on a click of its own, whose ParameterSource is not click's.
    source = parent.get_parameter_source("store") if parent is not None else None
    if parent is None or getattr(source, "name", None) != "COMMANDLINE":
        return None
    url = parent.params.get("store")
    return url if isinstance(url, str) and url else None


def _one_run(sizes: BenchSizes, options: RunOptions, prefix: str) -> dict[str, float]:
    """Stockade's own figures, once, with a progress bar on stderr."""
    from host.bench import STEPS, run_bench
    from host.supervise.child import LayerMissing

    progress = Progress(TextColumn("{task.description:<40}"), BarColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    with progress:
        task = progress.add_task(f"{prefix}starting", total=len(STEPS))
        first = [True]

        def on_step(label: str) -> None:
            if not first[0]:
                progress.advance(task)
            first[0] = False
            progress.update(task, description=prefix + label)

        try:
            figures = run_bench(sizes, options=options, on_step=on_step)
        except LayerMissing as exc:
            progress.stop()
            fail(str(exc), "run `stockade doctor`; or pass --degraded to measure anyway")
        progress.advance(task)
    return dict(figures)


def _peer_figures(peer: Path, anchor_run: Path | None, quick: bool) -> dict[str, float]:
    """The Apps-Engine's figures, measured right after Stockade's."""
    from host.bench.peer import PEER_CALLS, PeerError, measure_peer

    err_console.print("measuring the Apps-Engine peer ...", highlight=False)
    try:
        return measure_peer(peer, calls=PEER_CALLS, cold=3 if quick else 8,
                            run_script=anchor_run)
    except PeerError as exc:
        fail(str(exc), "build the peer first, or run without --peer")


def _check_peer(peer: Path, anchor_run: Path) -> None:
    """Everything the peer needs, checked before Stockade is measured (not after a run)."""
    from host.bench.peer import PeerError, check_peer

    try:
        check_peer(peer, anchor_run)
    except PeerError as exc:
        fail(str(exc), "build the peer first, or run without --peer")


def _find_anchor(peer_anchor: Path | None) -> Path:
    """The anchor's run.sh, found before the bench runs, so a missing one costs no minute."""
    from host.bench.peer import PeerError, find_anchor_run

    try:
        return find_anchor_run(peer_anchor)
    except PeerError as exc:
        fail(str(exc), "pass --peer-anchor DIR (the folder with the anchor's run.sh)")


def _write_floor(quick: bool, json_out: bool) -> None:
    from host.bench import writefloor

    samples, warmup, rounds = writefloor.QUICK if quick else writefloor.FULL
    figures = _with_progress("durable writes, no Python around", 2 * rounds,
                             lambda tick: writefloor.measure_write_floor(
                                 samples, warmup, rounds, on_progress=tick))
    _print_figures(f"stockade bench --write-floor ({'quick' if quick else 'full'})",
                   writefloor.MEANING, figures, json_out)


def _ledger_split(quick: bool, json_out: bool) -> None:
    from host.bench import ledgersplit

    rounds, seconds = ledgersplit.QUICK if quick else ledgersplit.FULL
    figures = _with_progress("admissions, in process and split", 2 * rounds,
                             lambda tick: ledgersplit.measure_ledger_split(
                                 rounds, seconds, on_progress=tick))
    _print_figures(f"stockade bench --ledger-split ({'quick' if quick else 'full'})",
                   ledgersplit.MEANING, figures, json_out)


def _with_progress(label: str, total: int,
                   measure: Callable[[Callable[[], None]], dict[str, float]]) -> dict[str, float]:
    """`measure(tick)` under a progress bar of `total` ticks on stderr."""
    progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    with progress:
        task = progress.add_task(label, total=total)
        return measure(lambda: progress.advance(task))


def _print_figures(title: str, meaning: Mapping[str, str], figures: Mapping[str, float],
                   json_out: bool) -> None:
    """One row a figure (`meaning`'s order, its unit from the key) on stderr; JSON on stdout."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("what")
    for key, what in meaning.items():
        unit = "/s" if key.endswith("_per_s") else " µs"
        table.add_row(key, f"{figures[key]:,.1f}{unit}", what)
    err_console.print(table)
    if json_out:
        emit_json(dict(figures))


def _rocketchat(quick: bool, degraded: bool, json_out: bool) -> None:
    from host.bench import remote
    from host.supervise.child import LayerMissing

    iterations, warmup = remote.QUICK if quick else remote.FULL
    err_console.print(f"a stand-in workspace process; {iterations} calls each ...",
                      highlight=False)
    try:
        figures = remote.measure_remote(iterations, warmup, degraded=degraded)
    except LayerMissing as exc:
        fail(str(exc), "run `stockade doctor`; or pass --degraded to measure anyway")
    table = Table(title=f"stockade bench --rocketchat ({'quick' if quick else 'full'})",
                  title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for key, value in figures.items():
        table.add_row(key, f"{value:,.1f} µs")
    err_console.print(table)
    if json_out:
        emit_json(figures)


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.command("bench")(bench)
