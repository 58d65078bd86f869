"""`stockade bench --scale [--quick] [--json]`: the growth figures of issue 27, each with its
target met / not met (`host/bench/scale.py`). A benchmark: unmet targets never fail the command.
"""
from __future__ import annotations

from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from host.bench.scale import ScaleSizes
from host.cli.output import emit_json, err_console, fail
from host.inert import host


def scale_command(quick: bool, degraded: bool, json_out: bool, *,
                  host_core: bool = True) -> None:
    from host.bench import scale
    from host.supervise.child import LayerMissing

    sizes = scale.QUICK if quick else scale.FULL
    progress = Progress(TextColumn("{task.description:<44}"), TimeElapsedColumn(),
                        console=err_console, transient=True)
    with progress:
        task = progress.add_task("starting", total=None)
        try:
            figures = scale.run_scale(
                sizes, degraded=degraded, host_core=host_core,
                on_step=lambda label: progress.update(task, description=label))
        except LayerMissing as exc:
            progress.stop()
            fail(str(exc), "run `stockade doctor`; or pass --degraded to measure anyway")
    mode = ("quick" if quick else "full") + ("" if host_core else ", host's threads anywhere")
    err_console.print(render_scale(figures, sizes, mode))
    if json_out:
        emit_json(figures)


def render_scale(figures: dict[str, float], sizes: ScaleSizes, mode: str) -> Table:
    from host.bench import scale

    title = (f"stockade bench --scale ({mode}): audit {sizes.audit_small:,} → "
             f"{sizes.audit_big:,} records, window {sizes.window_small} → "
             f"{sizes.window_big:,} units, 6 → {6 + sizes.apps_big} apps (N = {sizes.apps_big})")
    table = Table(title=title, title_justify="left")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("what")
    table.add_column("target")
    table.add_column("", no_wrap=True, min_width=7)
    verdicts = scale.met(figures)
    for key, what, text, _bound in scale.TARGETS:
        table.add_row(key, f"{figures[key]:,.2f}", what, text,
                      host("met", "green") if verdicts[key] else host("not met", "red"))
    for key, value in figures.items():
        if key not in verdicts:
            table.add_row(key, f"{value:,.1f}", "", "", host(""))
    return table
