"""`stockade demo`: the whole product in well under a minute, in a fresh temporary home."""
from __future__ import annotations

import typer

from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail


def demo(
    json_out: bool = typer.Option(False, "--json", help="Machine summary on stdout."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary home afterwards."),
    degraded: bool = typer.Option(False, "--degraded",
                                  help="Run even if a confinement layer is missing."),
    server: str = typer.Option("embedded", "--server", metavar="embedded|rocketchat",
                               help="rocketchat: against a stand-in Rocket.Chat workspace "
                               "started as its own process, over REST and webhooks."),
) -> None:
    """Install four example apps, simulate visitors, show the refusals. Exit 0 if all behaved."""
    from host.demo.scenario import run_demo
    from host.supervise.child import LayerMissing

    if server not in ("embedded", "rocketchat"):
        fail(f"--server {server!r} is not embedded or rocketchat")
    try:
        result = run_demo(err_console, keep=keep, degraded=degraded, server=server)
    except LayerMissing as exc:
        fail(str(exc), "run `stockade doctor`; `stockade demo --degraded` runs anyway")
    except FileNotFoundError as exc:
        fail(str(exc), "clone the repository and `pip install -e .` there")
    if json_out:
        emit_json(result.to_json())
    raise typer.Exit(0 if result.ok else EXIT_NEGATIVE)


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
