"""stderr whose reader quit (`stockade … 2>&1 | head`, a pager closed early): the text for
people is dropped from then on, and the command goes on to its own outcome and exit code.

Before, the first line written after the reader quit raised BrokenPipeError, and so did the
handler's own message about it: every command exited 1, also one whose change was made (`keys
host-rotate` had rotated; a script reading the exit code would rotate again). Only stderr:
stdout is the machine answer (`--json`), and a lost answer stays a failure.
"""
from __future__ import annotations

import contextlib
import os
from typing import IO, Any


class QuietPipe:
    """`inner` (the process's stderr), whose writes and flushes on a broken pipe are dropped:
    its descriptor is pointed at /dev/null, so neither a later line nor the interpreter's own
    flush at exit fails on it (Python's advice for EPIPE)."""

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(devnull, self._inner.fileno())
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._inner.flush()  # what was buffered goes to /dev/null now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # fileno, isatty, encoding, ...
