"""Where CLI output goes: machine output to stdout alone; tables, progress, logs to stderr."""
from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from host.inert import host, line

# markup, emoji and highlighting are OFF on both consoles (DESIGN rule 12): no string printed
# here is ever parsed, so author text that reaches a print by any route prints as the
# characters it is. The host styles its own words with `rich.text.Text` (see host.inert).
out_console = Console(file=sys.stdout, soft_wrap=True, markup=False, emoji=False,
                      highlight=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

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
    # The message may quote author text (a file name in a package, a policy value): one line,
    # inert, after the host's own "error:" label.
    err_console.print(line(host("error:", "bold red"), " ", message))
    if hint:
        err_console.print(line(host("hint:", "dim"), " ", hint))
    raise typer.Exit(code)
