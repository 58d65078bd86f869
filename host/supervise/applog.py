"""An app's log file: what the app printed, and the host's own notes about it, told apart.

Each line is `STAMP | TEXT` for the app's output and `STAMP stockade: TEXT` for a note the host
wrote (a handler that failed, events dropped, output cut). The app's text always comes after the
`| ` the host puts there, line by line (split at every line break `str.splitlines` knows, as
the reader splits), so nothing an app prints can begin a line as a host note does: printing
"stockade: handler failed" gives `STAMP | stockade: handler failed` (DESIGN rule 12: author
text can never imitate the host's own lines). A note is one line: the line breaks in it (an
app's exception text can hold some) are shown, not kept.

Every file in this format begins with one host note, `FORMAT_NOTE`. A file without it was
written by an earlier release, whose lines did not say who wrote them (an app's printed
"stockade: x" was `STAMP stockade: x` there, this format's host note): the writer moves such a
file to `.1` before its first line in this format, and a reader takes each of its lines as the
app's. A line in neither form (written by hand) is read as the app's too.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from host.apps.installs import mask_secrets
from host.supervise.logmask import MaskedStream, masked_to_the_end

APP_MARK = "| "
HOST_MARK = "stockade: "
# Per-install log kept on disk before rotation to `.1`. Guards the disk: an app's output and
# the host's notes about it are bounded to twice this per install (DESIGN rule 13).
MAX_LOG_BYTES = 1 << 20

Origin = Literal["app", "host"]
Entry = tuple[str, Origin, str]  # (stamp, who wrote it, text) of one line
# The first line of every log file in this format (see the module docstring).
FORMAT_NOTE = "log format 2: '| ' starts the app's output, 'stockade: ' the host's notes"
# How much of a file's start `current_format` reads: the format note's line fits in it.
_HEAD_BYTES = 256


# What `stamp` writes. A reader takes a line's first word as its stamp only in this shape: the
# stamp is shown as the host's text, so it must never be the app's.
_STAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def app_lines(when: str, text: str) -> str:
    """The app's `text` as log lines."""
    return "".join(f"{when} {APP_MARK}{line}\n" for line in text.splitlines())


def host_line(when: str, text: str) -> str:
    """One note of the host's as one log line."""
    return f"{when} {HOST_MARK}{'⏎'.join(text.splitlines())}\n"


def parse(line: str) -> Entry:
    """(stamp, who wrote it, text) of one log line."""
    when, sep, rest = line.partition(" ")
    if sep and _STAMP_RE.fullmatch(when):
        if rest.startswith(HOST_MARK):
            return when, "host", rest[len(HOST_MARK):]
        if rest.startswith(APP_MARK):
            return when, "app", rest[len(APP_MARK):]
    return "", "app", line


def parse_legacy(line: str) -> Entry:
    """(stamp, "app", text) of a line written before this format: nothing in it says who wrote
    it, so it is never shown as the host's (and only a stamp's shape is taken as one: there the
    app's own text began lines too)."""
    when, sep, rest = line.partition(" ")
    return (when, "app", rest) if sep and _STAMP_RE.fullmatch(when) else ("", "app", line)


def current_format(path: Path) -> bool:
    """Whether the log at `path` begins with this format's note (False for an earlier
    release's file; raises OSError when it cannot be read)."""
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    _when, who, text = parse(head.split("\n", 1)[0])
    return who == "host" and text == FORMAT_NOTE


def is_format_note(entry: Entry) -> bool:
    return entry[1] == "host" and entry[2] == FORMAT_NOTE


class AppLog:
    """The sink an app's child writes its output into (`logcap.LogSink`), with `note` for the
    host's own notes (`logcap.LogBudget` uses it for the note that output was cut), and
    `stream` for one event's output masked across its frames (`logmask`; `secrets` gives the
    values to mask: those of the record the child was loaded with).

    The app's text is masked here, once, on whichever way it comes (`stream`, or a frame on its
    own), and `write` masks nothing: masked again there, every character was masked twice, and
    a way in that lost its own mask still looked masked. The writer behind `note` masks the
    host's notes (a note may quote the app's words)."""

    __slots__ = ("_note", "_secrets", "_write")

    def __init__(self, write: Callable[[str, bool], None], note: Callable[[str], None],
                 secrets: Callable[[], Sequence[str]] = tuple) -> None:
        self._write, self._note, self._secrets = write, note, secrets

    def __call__(self, text: str, truncated: bool) -> None:
        """A frame on its own, outside an event's stream: masked alone, and to its very end
        when it was cut (`logmask.masked_to_the_end`: the rest of a value may have followed)."""
        values = self._secrets()
        if values:
            text = (masked_to_the_end(text, values) if truncated
                    else mask_secrets(text, list(values)))
        self._write(text, truncated)

    def note(self, text: str) -> None:
        self._note(text)

    def stream(self) -> MaskedStream:
        """The sink for one event's (or load's) frames: a secret value split across two of them
        is masked whole (`logmask.MaskedStream`)."""
        return MaskedStream(self._write, self._note, self._secrets())


# Logs this process has checked for an earlier release's format (and moved aside if so).
_checked: set[Path] = set()
_checked_lock = threading.Lock()


def _set_aside_older_format(path: Path) -> None:
    with _checked_lock:
        if path in _checked:
            return
        if path.exists() and not current_format(path):
            path.replace(path.with_suffix(path.suffix + ".1"))
        _checked.add(path)


def append_capped(path: Path, text: str, cap: int = MAX_LOG_BYTES) -> None:
    """Append to a per-install log, rotating to `.1` past `cap` (the disk stays bounded); a new
    file begins with `FORMAT_NOTE`, an earlier release's file is moved to `.1` first."""
    try:
        if path not in _checked:
            _set_aside_older_format(path)
        if path.exists() and path.stat().st_size > cap:
            path.replace(path.with_suffix(path.suffix + ".1"))
        head = "" if path.exists() else host_line(stamp(), FORMAT_NOTE)
        with path.open("a", encoding="utf-8") as f:
            f.write(head + text)
    except OSError:
        pass


def remove_log(path: Path) -> None:
    """Delete an uninstalled install's log and its rotation (`app uninstall` says it does): the
    cap is per install, so logs kept after their install grew the folder by up to twice
    MAX_LOG_BYTES per install/uninstall cycle, for good (DESIGN rule 13)."""
    with _checked_lock:
        _checked.discard(path)
        for p in (path, path.with_suffix(path.suffix + ".1")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


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
