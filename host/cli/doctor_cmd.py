"""`stockade doctor`: confinement layers on this machine, key and store health, audit chain."""
from __future__ import annotations

import typer
from rich.table import Table

from host.cli.output import EXIT_NEGATIVE, emit_json, err_console
from host.home import Home
from host.inert import MAX_BLOCK, author, host, line


def doctor(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Machine-readable report on stdout."),
) -> None:
    """Check the machine and the home folder. Exit 1 when a required check fails."""
    from host.doctor import run

    home: Home = ctx.obj
    report = run(home)
    if json_out:
        emit_json(report.to_json())
    else:
        table = Table(title=f"stockade doctor ({home.root})")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        for c in report.checks:
            status = (host("ok", "green") if c.ok else
                      host("FAIL", "red") if c.required else host("warn", "yellow"))
            # A detail may quote what the host did not write: the machine names and host ids
            # of the lease rows other hosts wrote into a shared store, an error's text. Shown
            # inert and cut (DESIGN rule 12); --json keeps each exactly.
            table.add_row(author(c.name, quote=False, style=""), status,
                          author(c.detail, limit=MAX_BLOCK, quote=False, style=""))
        err_console.print(table)
        err_console.print(host("all required checks pass", "green") if report.ok else
                          line(host("a required check failed", "red"), ": apps will not run "
                               "unless the host is started with --degraded"))
    raise typer.Exit(0 if report.ok else EXIT_NEGATIVE)


def register(root: typer.Typer) -> None:
    root.command("doctor")(doctor)
