"""Where CLI output goes: machine output to stdout alone; tables, progress, logs to stderr."""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

out_console = Console(file=sys.stdout, soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

# Exit codes shared by every command (issue 5, "Conventions for the whole CLI").
EXIT_OK = 0
EXIT_NEGATIVE = 1  # findings, denied, new access
EXIT_USAGE = 2  # usage or input error
EXIT_CONFIRM = 3  # confirmation required (or, for `sandbox exec`, killed for a limit)


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (and nothing else ever goes there with --json)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, hint: str = "", code: int = EXIT_USAGE) -> NoReturn:
    """Print what was wrong and what to do, then exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    if hint:
        err_console.print(f"[dim]hint:[/] {hint}", highlight=False)
    raise typer.Exit(code)
