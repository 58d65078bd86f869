"""Confined children forked ahead of need, so an app's start does not wait for fork and confine.

A child from the zygote spends most of its start (~3 ms here) confining itself: descriptors,
identity, rlimits, Landlock, seccomp. None of that depends on the app, so the spawner keeps
`size` children that have done it and wait for their handshake. Taking one hands the start
path a child at the point a fresh fork would reach a few milliseconds later; a background
thread then forks its replacement.

Nothing about the app reaches a waiting child: it has no token (the handshake sends it), no
source (the load sends it) and the same layers as any child, which the host still checks in
the handshake. Only zygote children are pooled: the fresh-interpreter fallback arms its
parent-death signal on the thread that started it, which must be a thread that lives as long
as the host, and it is the slow path that exists for machines without a zygote anyway.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("stockade.prefork")


class Spare(Protocol):
    """What the pool needs of a child (`host.supervise.child.Child` is one). A protocol, not an
    import: `spawner.py` owns the pool, so the pool must not import it back."""

    @property
    def dead(self) -> bool: ...

    def has_exited(self) -> bool: ...

    def kill(self, reason: str, *, code: str = ...) -> None: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Spare)

# How long the replacement of a taken child waits for the start that took it to finish
# (`Prefork.started`). Forking and confining a replacement costs ~3 ms of CPU in the zygote and
# the new child; during a start it competes with that start for the cores (on two cores a cold
# start measured ~4.9 ms with an immediate refill and ~4.0 ms deferred). The cap keeps the pool
# filling if a start never reports back.
REFILL_DEFER_MAX_S = 0.05
# And once the start reported (its app's first job answered), a little longer: the answer is
# still on its way to whoever waits for it (a dispatcher, a REST caller) and the fork's burst of
# host work (a cgroup made, the zygote asked, under the interpreter lock) delayed it. Starts on
# an idle host: ~5.5 to ~5.0 ms with it (docs/BENCH.md).
REFILL_SETTLE_S = 0.005
# After a fork that failed (EAGAIN at a pids limit, ENOMEM, a zygote killed mid-fork), the
# filler tries again after a pause that doubles from the first value up to the cap: a brief
# shortage must not end the pool for the host's life (it did: the filler returned), and a
# lasting one must not become a fork loop eating a core. The next try replaces a dead zygote
# (`Spawner._fork`).
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 10.0


class Prefork(Generic[C]):
    """Keeps up to `size` confined, app-less children ready for `take`."""

    def __init__(self, make: Callable[[], C], size: int) -> None:
        self._make = make
        self._size = size
        self._ready: list[C] = []
        self._cv = threading.Condition()
        self._closed = False
        self._starting = 0  # starts that took a child and have not reported back
        self.made = 0  # children forked for the pool (for tests and diagnostics)
        self._thread = threading.Thread(target=self._fill, name="stockade-prefork", daemon=True)
        self._thread.start()

    def take(self) -> C | None:
        """A ready child, or None (pool empty or closed: the caller forks one itself)."""
        with self._cv:
            while self._ready:
                child = self._ready.pop(0)
                self._cv.notify()
                if not (child.dead or child.has_exited()):
                    self._starting += 1
                    return child
                _discard(child, "pooled child ended before use")
        return None

    def started(self) -> None:
        """A start that took a child is over (its app's first job answered, or the start
        failed: `Host.first_job_over`, `Host.start_child`): its replacement may be forked."""
        with self._cv:
            self._starting = max(0, self._starting - 1)
            self._cv.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the pool is full (tests and benchmarks that need a known state)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._closed or len(self._ready) >= self._size,
                                     timeout)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            ready, self._ready = self._ready, []
            self._cv.notify_all()
        for child in ready:
            _discard(child, "host stopped")

    def _fill(self) -> None:
        retry = 0.0  # the pause before the next try; 0 while forks succeed
        failed = 0  # forks failed in a row (one log line a streak, not one per try)
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._closed or len(self._ready) < self._size)
                self._cv.wait_for(lambda: self._closed or self._starting == 0,
                                  REFILL_DEFER_MAX_S)
                self._starting = 0  # past the cap, a start that never reported is forgotten
                self._cv.wait_for(lambda: self._closed, REFILL_SETTLE_S)
                if self._closed:
                    return
            try:
                child = self._make()
            except Exception as exc:  # noqa: BLE001 - the filler thread must not end on it
                # One line, no traceback: a host stopping (Ctrl-C) can close the zygote under
                # this thread, which is no news to the operator; anything else is named.
                with self._cv:
                    if self._closed:
                        return
                failed += 1
                retry = min(RETRY_MAX_S, retry * 2) if retry else RETRY_FIRST_S
                if failed == 1:
                    log.warning("prefork: could not fork a child (%s: %s); starts fork on "
                                "demand meanwhile, trying again", type(exc).__name__, exc)
                with self._cv:
                    if self._cv.wait_for(lambda: self._closed, retry):
                        return
                continue
            if failed:
                log.warning("prefork: forking again after %d failed fork(s)", failed)
                failed, retry = 0, 0.0
            with self._cv:
                self.made += 1
                if self._closed:
                    _discard(child, "host stopped")
                    return
                self._ready.append(child)
                self._cv.notify_all()


def _discard(child: Spare, reason: str) -> None:
    child.kill(reason, code="shutdown")
    with contextlib.suppress(OSError):
        child.close()
