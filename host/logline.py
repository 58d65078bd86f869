"""The host's log lines made inert for the operator's terminal (DESIGN rule 12).

What `stockade serve` (and the REST front) logs is read on the operator's screen, and a log
message quotes values the host did not write: another host's id and machine name from a shared
store's lease rows, an app's ids, a workspace's error text, a path a client sent. With no
handler of the host's own, Python's last-resort handler wrote each message as it was: a value
with ESC or OSC sequences cleared the screen or retitled the terminal, a newline printed a line
of its own choosing (a fake "stockade server: http://..." address line that a script waiting
for the real one would take).

`install()` puts one handler on the root logger that writes each message through
`host.inert`: the message on one line, control, format and bidi characters shown as escapes,
cut at `MAX_LOG_MESSAGE`; a traceback keeps its lines, indented, with nothing active. Same
level and destination as the last-resort handler it replaces (WARNING and up, to stderr as it
is when the line is written).
"""
from __future__ import annotations

import copy
import logging
import sys
from types import TracebackType

from host.inert import output, visible

# Longest log message written (a traceback comes on top of it). Guards the operator's screen and
# the host's log file from one message quoting a huge value (a lease row's 100 kB machine name);
# the host's own messages are a few hundred characters.
MAX_LOG_MESSAGE = 2000

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class InertFormatter(logging.Formatter):
    """`%(message)s` (after `prefix`) with every value in it inert; see the module docstring."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix.replace("%", "%%") + "%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        shown = copy.copy(record)  # the record is shared with every other handler: left as it is
        shown.msg, shown.args = visible(record.getMessage(), limit=MAX_LOG_MESSAGE), None
        shown.exc_text = None
        return super().format(shown)

    def formatException(self, ei: _ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(block: str) -> str:
    """A traceback with its lines kept (it is read by lines) but nothing active in them, each
    line indented: an exception's own text may quote the same values as a message, newlines
    and all, and indented it can never begin a line at column 0 where the host's own lines
    (its messages, "stockade server: ...") stand."""
    return "\n".join("  " + ln for ln in output(block).split("\n"))


class _StderrNow(logging.Handler):
    """Writes to `sys.stderr` as it is when a line is written (as the last-resort handler did),
    so a redirected stderr gets the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


def install(prefix: str = "") -> None:
    """Give the process's root logger the inert stderr handler (once; WARNING and up)."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrNow) for h in root.handlers):
        return
    handler = _StderrNow(logging.WARNING)
    handler.setFormatter(InertFormatter(prefix))
    root.addHandler(handler)
