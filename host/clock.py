"""Injected time: decision paths never read the clock ad hoc, so windows are testable."""
from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (may step backwards; consumers must cope)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps backwards (for deadlines)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock tests move by hand; `set` may step wall time backwards to model a clock step."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += max(0.0, seconds)

    def set(self, wall: float) -> None:
        self._now = wall
