"""The `stockade` console script: a Ctrl-C while the CLI is still loading is one line too.

Importing the CLI (typer, rich, pydantic, the host's rooms) takes a fraction of a second, and
seconds on a loaded machine. A Ctrl-C in that window raised KeyboardInterrupt out of the import
and printed a traceback: the one place "one line, exit 130" did not hold. This module imports
only the standard library before it can catch that; `host.cli.main` installs the real SIGINT
handler as its first act.
"""
from __future__ import annotations

import sys

from host.cli.interrupt import (
    EXIT_INTERRUPTED,
    INTERRUPTED_LINE,
    caused_by_interrupt,
    install_redelivery,
)


def _interrupted() -> SystemExit:
    try:
        sys.stderr.write(INTERRUPTED_LINE)
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the exit code still says it
        pass
    return SystemExit(EXIT_INTERRUPTED)


def main() -> None:
    # A Ctrl-C that lands in a finalizer is not lost (host/cli/interrupt.py).
    install_redelivery()
    try:
        from host.cli.main import main as run
    except KeyboardInterrupt:
        raise _interrupted() from None
    except Exception as exc:
        if caused_by_interrupt(exc):  # a Ctrl-C Python wrapped (host/cli/interrupt.py)
            raise _interrupted() from None
        raise
    try:
        run()
    except KeyboardInterrupt:  # between the import and run()'s own handler
        raise _interrupted() from None
