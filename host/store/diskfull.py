"""The host log's line for work a full disk refuses: one line per `DISK_FULL_LOG_EVERY_S` for
the whole process, with the count refused since the last, never a traceback.

Shared by everything that meets a full store while the host serves: the bridge calls the child
channel refuses (`host.supervise.disk_notice`) and the group commit of reads' records
(`host.ledger.groupcommit`), so an operator reads one line a window, not one per call or per
retry, whichever meets the full disk first.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from host.errors import StartRefused

log = logging.getLogger("stockade.store")

# How often a full disk under the host's stores is reported while work keeps meeting it (one
# line, no traceback; the count refused since the last line rides along). Guards the host log,
# usually on that same disk, against a line per call from a busy app.
DISK_FULL_LOG_EVERY_S = 10.0


class DiskFullNotice:
    """One log line per `DISK_FULL_LOG_EVERY_S` for work refused by a full disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0
        self._quiet = 0

    def refused(self, what: str) -> None:
        """`what` ("bridge call users.create") met a full disk: log it, unless a line went out
        within the window (then it is counted for the next line)."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._quiet += 1
                return
            quiet, self._quiet, self._next = self._quiet, 0, now + DISK_FULL_LOG_EVERY_S
        more = f" ({quiet} more refused since the last line)" if quiet else ""
        log.error("%s refused: the host's store is full (disk full)%s; free space "
                  "(`stockade doctor` names the file system)", what, more)


disk_full_notice = DiskFullNotice()

# Below this much free space a store that fails to open is taken to have met a full disk: SQLite
# then says only "disk I/O error" (it cannot make its -wal and -shm files), which reads as a bug.
# A convenience for the message, not a security check.
NEARLY_FULL_BYTES = 1 << 20


def no_space(path: Path) -> bool:
    """Whether the file system holding `path` has (next to) no free space left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES


def disk_full_refusal(path: Path) -> StartRefused:
    """The clear refusal for a store at `path` that cannot be opened on a full disk."""
    return StartRefused(f"the store {path} cannot be opened: its file system is full (disk "
                        "full)", "free space on it; `stockade doctor` names the file system")


def store_trouble(exc: BaseException) -> str:
    """A reason an operator can act on when a store failed, in the app's error message (the
    exception's own text stays in the host's log: it may hold paths or SQL)."""
    text = str(exc).lower()
    if "disk is full" in text or "no space" in text:
        return ": the store is full (disk full); nothing was applied unless the audit says so"
    if "malformed" in text or "not a database" in text:
        return ": the store is damaged; run `stockade doctor`"
    return ""
