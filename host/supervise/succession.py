"""Which runner an app continues in after its restarts (`AppRunner.succeeded_by`).

A runner replaced by a restart (an update, new settings, a new token) passes on what still
reaches it to the runner the app runs in now. Every runner of one line of restarts shares one
`Succession`, which names only the newest: each old runner used to hold the next one, a chain
from the app's first runner to its newest, so whatever kept the first (the gc freeze a serving
host does at start, `host.supervise.gctune`, keeps it for good) kept every runner the app ever
had, with its last child, session and install record (~25 KB per restart, for the life of the
host process; DESIGN rule 13). Now at most the newest is held by the old ones.
"""
from __future__ import annotations

from typing import Generic, TypeVar

R = TypeVar("R")


class Succession(Generic[R]):
    """The newest runner of a line of restarts (None: the line was never restarted)."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: R | None = None
