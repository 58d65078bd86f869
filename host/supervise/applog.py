"""An app's log file: what the app printed, and the host's own notes about it, told apart.

Each line is `STAMP | TEXT` for the app's output and `STAMP stockade: TEXT` for a note the host
wrote (a handler that failed, events dropped, output cut). The app's text always comes after the
`| ` the host puts there, line by line (split at every line break `str.splitlines` knows, as
the reader splits), so nothing an app prints can begin a line as a host note does: printing
"stockade: handler failed" gives `STAMP | stockade: handler failed` (DESIGN rule 12: author
text can never imitate the host's own lines). A note is one line: the line breaks in it (an
app's exception text can hold some) are shown, not kept.

A line in neither form was written before this format (or by hand): it is read as the app's.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

APP_MARK = "| "
HOST_MARK = "stockade: "
# Per-install log kept on disk before rotation to `.1`. Guards the disk: an app's output and
# the host's notes about it are bounded to twice this per install (DESIGN rule 13).
MAX_LOG_BYTES = 1 << 20

Origin = Literal["app", "host"]


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def app_lines(when: str, text: str) -> str:
    """The app's `text` as log lines."""
    return "".join(f"{when} {APP_MARK}{line}\n" for line in text.splitlines())


def host_line(when: str, text: str) -> str:
    """One note of the host's as one log line."""
    return f"{when} {HOST_MARK}{'⏎'.join(text.splitlines())}\n"


def parse(line: str) -> tuple[str, Origin, str]:
    """(stamp, who wrote it, text) of one log line."""
    when, sep, rest = line.partition(" ")
    if sep and rest.startswith(HOST_MARK):
        return when, "host", rest[len(HOST_MARK):]
    if sep and rest.startswith(APP_MARK):
        return when, "app", rest[len(APP_MARK):]
    return "", "app", line


class AppLog:
    """The sink an app's child writes its output into (`logcap.LogSink`), with `note` for the
    host's own notes (`logcap.LogBudget` uses it for the note that output was cut)."""

    __slots__ = ("_note", "_write")

    def __init__(self, write: Callable[[str, bool], None], note: Callable[[str], None]) -> None:
        self._write, self._note = write, note

    def __call__(self, text: str, truncated: bool) -> None:
        self._write(text, truncated)

    def note(self, text: str) -> None:
        self._note(text)


def append_capped(path: Path, text: str, cap: int = MAX_LOG_BYTES) -> None:
    """Append to a per-install log, rotating to `.1` past `cap` (the disk stays bounded)."""
    try:
        if path.exists() and path.stat().st_size > cap:
            path.replace(path.with_suffix(path.suffix + ".1"))
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        pass


def write_output(log: Path, text: str, truncated: bool) -> None:
    """What the app printed, as the app's lines (and a note if the child cut it)."""
    when = stamp()
    lines = app_lines(when, text)
    if truncated:
        lines += host_line(when, "output truncated")
    append_capped(log, lines)


def write_note(log: Path, text: str) -> None:
    """A note of the host's about the app, as the host's line."""
    append_capped(log, host_line(stamp(), text))
