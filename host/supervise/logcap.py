"""The host's cap on what one event (or one load) of an app may write to the app's log.

The child caps print() output itself (`sandbox.restricted.CappedPrint`), but that cap runs in
the child: an app that escaped the runtime skips it and sends Log frames as fast as the pipe
takes them, and the host stamps every line it writes (`Host.write_app_log`: ~21 bytes a line,
so a frame of bare line breaks costs ~21 times its size). A rule enforced in the child is no
rule (DESIGN rule 4); this is the one that holds (rule 13: logs capped and counted).
"""
from __future__ import annotations

from collections.abc import Callable

# What the Log frames of one event (or one load) may bring into the app's log; the rest is
# dropped, counted and noted once. Characters: the child's own print cap per event
# (`sandbox.restricted.PRINT_TOTAL_CAP`), so an app that stays in the runtime never meets it.
# Lines: bounds the stamps the host adds, one per line (a megabyte of line breaks would be
# ~21 MB of log writes); a handler that prints more lines than this in one event loses the rest.
MAX_LOG_CHARS_PER_EVENT = 1 << 20
MAX_LOG_LINES_PER_EVENT = 10_000

# Past either of these in one event (or load), the Log frames are a flood from code outside the
# runtime, and the child is killed (`Child`, code "flood") rather than read, decoded and dropped
# until its deadline, holding a host thread the whole time. A child in its runtime sends at most
# `PRINT_TOTAL_CAP` (1 MiB) characters, in one frame per flush of its print buffer: at each
# bridge call (at most `MAX_CALLS_PER_EVENT`, 10,000), every `PRINT_FLUSH_BYTES` (32 KiB) and at
# the end. Twice those never stops an app that stayed in its runtime
# (`tests/security/test_hostile_channel.py` checks these against the sandbox's own figures).
LOG_FLOOD_CHARS = 2 * MAX_LOG_CHARS_PER_EVENT
LOG_FLOOD_FRAMES = 2 * (10_000 + (1 << 20) // (32 * 1024) + 1)

LogSink = Callable[[str, bool], None]


class LogBudget:
    """One event's (or load's) share of the app's log, standing in for its sink: passes text
    on until a cap is reached, then drops the rest, counting it. `close` notes a drop once.

    `max_lines`: `sandbox exec` writes a snippet's output unstamped to a terminal, so it has
    the character cap only (and its own, `MAX_EXEC_OUTPUT`)."""

    def __init__(self, sink: LogSink, what: str = "event",
                 max_lines: int = MAX_LOG_LINES_PER_EVENT) -> None:
        # One event's stream where the sink opens one (`applog.AppLog.stream`: a secret value
        # split across two frames is masked whole), else the sink itself.
        opener = getattr(sink, "stream", None)
        self._sink: LogSink = opener() if opener is not None else sink
        self._what = what
        self._max_lines = max_lines
        self.chars = 0
        self.lines = 0
        self.cut = False
        self.dropped = 0  # characters dropped
        self.frames = 0  # Log frames heard, kept or not
        self.received = 0  # their characters

    @property
    def flooding(self) -> bool:
        """More than a child in its runtime can send (`LOG_FLOOD_CHARS`, `LOG_FLOOD_FRAMES`)."""
        return self.received > LOG_FLOOD_CHARS or self.frames > LOG_FLOOD_FRAMES

    def __call__(self, text: str, truncated: bool) -> None:
        self.frames += 1
        self.received += len(text)
        if self.cut:
            self.dropped += len(text)  # nothing else: a flood past the cap costs no more work
            return
        kept = text[:MAX_LOG_CHARS_PER_EVENT - self.chars]
        # Counted as `Host.write_app_log` splits them (every line break `str.splitlines` knows,
        # not only "\n"); a truncated frame costs one line more (the host notes it).
        lines = kept.splitlines(keepends=True)
        room = self._max_lines - self.lines
        if len(lines) + truncated > room:
            lines = lines[:room]
            kept, truncated = "".join(lines), False  # this budget's own note says it instead
            self.cut = True
        self.cut = self.cut or len(kept) < len(text)
        self.dropped += len(text) - len(kept)
        self.chars += len(kept)
        self.lines += len(lines) + truncated
        if kept or truncated:
            self._sink(kept, truncated)

    def close(self) -> bool:
        """The event (or load) is over: note a drop in the app's log, once. True if cut.

        As the host's own note where the sink takes one (`applog.AppLog.note`: an app's log,
        where no printed line can look like it), else as text (a snippet's terminal). First the
        stream's end, if the sink is one: what it held back is written before the note."""
        end = getattr(self._sink, "end", None)
        if end is not None:
            end(self.cut)
        if self.cut:
            text = (f"log output of this {self._what} passed the host's cap "
                    f"({self._max_lines} lines, {MAX_LOG_CHARS_PER_EVENT} characters): "
                    f"{self.dropped} more characters dropped")
            note = getattr(self._sink, "note", None)
            if note is not None:
                note(text)
            else:
                self._sink(f"[stockade] {text}\n", False)
        return self.cut
