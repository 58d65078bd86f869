"""Which hosts are serving a home: a shared lock per running host, an exclusive one to settle.

Why: when a host starts it settles every call that was audited but never finished
(`Host.reconcile`: a refund for a write the server never applied) and re-counts the seat
ceiling from the server's users. Both are right only if no other host is in the middle of a
call on the same home. DESIGN rule 8 lets several host processes share one home's quotas. Without
this lock, a second host starting while the first was between a create's admit and its server
write would settle that create as "not applied" and refund its unit; the first host's write
then lands on top, and the window holds N + 1 creations. The seat re-count would likewise lose a
reservation in flight.

Each running host holds `LOCK_SH` on `HOME/host.lock` for as long as it serves. A starting host
first asks for `LOCK_EX` without waiting. If it gets it, no host is serving: it settles, then
converts to `LOCK_SH`. If it does not, it takes `LOCK_SH` and leaves the calls in flight to their
hosts. `flock(2)` locks belong to the open file, so the kernel drops a host's lock when the host
dies, however it dies. A crashed host's unfinished calls are settled by the next host that starts
alone; until then their units stay reserved (the safe side), and the window frees them anyway.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from host.errors import StartRefused
from host.store import lockholder

# How long a starting host waits for its shared lock while another host settles under the
# exclusive one. Settling is a few statements per unfinished call, so this is generous; past it
# the start fails with a message instead of hanging.
LEASE_WAIT_S = 30.0
_POLL_S = 0.01
log = logging.getLogger("stockade.lease")


class LeaseError(StartRefused):
    """The lease could not be taken (another process kept the home locked too long). A
    `StartRefused`: `serve` says it in one line with the hint and exits 1 (it was an
    "unexpected error, please report it")."""

    def __init__(self, message: str, hint: str = "try again once it has finished, or stop "
                 "that process if it is stuck (`kill -CONT` a stopped one)") -> None:
        super().__init__(message, hint)


class HomeLease:
    """One host's claim to serve a home (see the module docstring)."""

    def __init__(self, path: Path, *, wait_s: float = LEASE_WAIT_S) -> None:
        self.path = path
        self.wait_s = wait_s
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, settle: Callable[[], None]) -> bool:
        """Take the shared lease. If no other host holds one, run `settle` first, under the
        exclusive lock. Returns whether `settle` ran. On any error nothing stays locked."""
        if self._fd is not None:
            raise LeaseError(f"{self.path}: this host already holds its lease")
        # O_CLOEXEC (Python's default) keeps the lock out of spawned processes; a lock inherited
        # by a child would outlive its host and keep the next one from settling.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            alone = _try_lock(fd, fcntl.LOCK_EX)
            if alone:
                settle()
            # Converting is not atomic: between dropping LOCK_EX and getting LOCK_SH another
            # starting host may take LOCK_EX and settle. That is safe: this host has served no
            # call yet, and it waits here until that host has finished settling.
            self._wait_shared(fd)
        except BaseException:
            os.close(fd)  # closing the file drops whatever lock it held
            raise
        self._fd = fd
        return alone

    def _wait_shared(self, fd: int) -> None:
        deadline = time.monotonic() + self.wait_s
        said = False
        while not _try_lock(fd, fcntl.LOCK_SH):
            if time.monotonic() >= deadline:
                raise LeaseError(
                    f"{self.path} is held exclusively by {holder(fd)} for over "
                    f"{self.wait_s:g} s (a host settling unfinished calls as it starts, or "
                    "`stockade store migrate` moving server.db): nothing was started or "
                    "changed")
            if not said and self.wait_s > 0:
                # The wait is the operator's to understand: it was silent for its 30 s.
                log.warning("%s is held exclusively by %s (a host settling unfinished calls as "
                            "it starts, or `stockade store migrate`): waiting up to %g s",
                            self.path, holder(fd), self.wait_s)
                said = True
            time.sleep(_POLL_S)

    def release(self) -> None:
        """Stop serving: drop the lock (safe to call twice)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def others_serving(path: Path) -> bool:
    """Whether any host holds a lease on this home now (a snapshot, for status output).

    It holds `LOCK_EX` for an instant. A host that starts in that instant does not settle this
    time, which is the safe side: the calls stay reserved until a later start settles them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return not _try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def holder(fd: int) -> str:
    """Who holds the exclusive `flock` on `fd`'s file (`host.store.lockholder`)."""
    return lockholder.holder(lockholder.file_id(os.fstat(fd)), "FLOCK")


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
