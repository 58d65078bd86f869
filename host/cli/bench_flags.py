"""Which of `stockade bench`'s options mean something to which bench.

An option given to a bench that does not read it is refused, never dropped unsaid: an A/B run
of `--load` with `--quick`, or of `--scale` with `--no-pin-bursts`, would otherwise report the
default's figures as the variant's."""
from __future__ import annotations

import typer

DEFAULT = ""  # the default bench (bridge calls, the floor, REST, start, memory, fan-out)

# option's parameter name -> the benches that read it (by the flag that picks the bench)
APPLIES: dict[str, frozenset[str]] = {
    "quick": frozenset({DEFAULT, "--store", "--write-floor", "--ledger-split", "--scale",
                        "--rocketchat"}),
    "degraded": frozenset({DEFAULT, "--scale", "--rocketchat", "--load", "--soak"}),
    "rate": frozenset({"--soak"}),
    "step_seconds": frozenset({"--load"}),
    "rates": frozenset({"--load"}),
    "rest_process": frozenset({"--load"}),
    "pin_apps": frozenset({DEFAULT, "--load"}),
    "pin_bursts": frozenset({DEFAULT, "--load"}),
    "server_apart": frozenset({DEFAULT, "--load"}),
    "host_core": frozenset({DEFAULT, "--load", "--scale"}),
}


def _given(ctx: typer.Context, name: str) -> bool:
    # by name: typer carries its own copy of click, whose enum is not `click.core`'s
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _spelling(ctx: typer.Context, name: str) -> str:
    """The option as it was most likely typed (`--no-host-core` for a false `--host-core`)."""
    for p in ctx.command.params:
        if p.name == name and p.opts:
            secondary = getattr(p, "secondary_opts", [])
            return str(secondary[0] if secondary and ctx.params.get(name) is False
                       else p.opts[0])
    return name


def misplaced(ctx: typer.Context, mode: str) -> tuple[str, str] | None:
    """(the first option given that `mode`'s bench does not read, the benches that do)."""
    for name, benches in APPLIES.items():
        if mode not in benches and _given(ctx, name):
            readers = ", ".join(b or "the default bench" for b in sorted(benches))
            return _spelling(ctx, name), readers
    if _given(ctx, "peer_anchor") and ctx.params.get("peer") is None:
        return "--peer-anchor", "--peer"
    return None
