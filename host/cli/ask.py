"""Yes/no questions to the operator, which one Ctrl-C always ends, and secrets read unechoed.

`typer.confirm` waits for the answer in `input()`. A SIGINT that lands after the interpreter
last looked for pending signals and before `input()` blocks in `read()` is handled only when
`read()` returns: the Ctrl-C was lost and the consent prompt went on waiting (seen under load,
`tests/cli/test_cli_errors_signals.py::test_ctrl_c_at_a_prompt`; a second Ctrl-C got through).
On a terminal the wait here is a `select()` of at most POLL_S at a time, between which the
interpreter runs the pending handler (`host.cli.main`'s, which ends the command with 130).
"""
from __future__ import annotations

import select
import sys
import termios

import typer

# How long one wait for the operator's answer lasts before the interpreter looks for a pending
# Ctrl-C (s): the most a Ctrl-C at a prompt can wait to be acted on. A wake-up this often costs
# nothing measurable.
POLL_S = 0.2


def confirm(question: str, default: bool) -> bool:
    """Ask `question` on stderr (never stdout: `--json` output stays clean) until the answer is
    yes, no, or empty (`default`). End of input aborts, as `typer.confirm` does."""
    suffix = " [Y/n]: " if default else " [y/N]: "
    while True:
        sys.stderr.write(question + suffix)
        sys.stderr.flush()
        line = _read_line()
        if line is None:
            sys.stderr.write("\n")
            raise typer.Abort()
        value = line.strip().lower()
        if value in ("y", "yes"):
            return True
        if value in ("n", "no"):
            return False
        if value == "":
            return default
        sys.stderr.write("Error: invalid input\n")


def _read_line() -> str | None:
    """One line of stdin, None at its end. On a terminal, waits in POLL_S slices: a terminal
    hands over one line a read, so nothing already read waits in stdin's buffer while
    `select()` waits on its descriptor (a pipe may hand over many: read at once)."""
    stdin = sys.stdin
    if stdin is None:
        return None
    if stdin.isatty():
        fd = stdin.fileno()
        while not select.select([fd], [], [], POLL_S)[0]:
            pass
    line = stdin.readline()
    return line or None


def secret_line(prompt: str) -> str:
    """One line of stdin for a secret, without its line break ("" at the end of input).

    On a terminal `prompt` goes to stderr and what is typed is not echoed (the terminal's ECHO
    is off for the read, put back however it ends, Ctrl-C included): a secret typed or pasted
    at `app settings APP KEY=-` or `rocketchat connect` stayed on the screen, in the terminal's
    scrollback and in any recording of the session. Piped input is read as it comes."""
    stdin = sys.stdin
    if stdin is None:
        return ""
    if not stdin.isatty():
        return stdin.readline().rstrip("\n")
    fd = stdin.fileno()
    was = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~termios.ECHO  # the local modes: no echo, the line still edited by the terminal
    termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    try:
        # Asked only once the echo is off: a line typed as soon as the prompt shows is unseen.
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = _read_line()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, was)
        sys.stderr.write("\n")
        sys.stderr.flush()
    return (line or "").rstrip("\n")
