"""Group commit of reads' decision records (DESIGN rule 9).

A read changes nothing on the server, so its allow record need not be durable before the read
is served: rule 9 lets it be group-committed, at most 10 ms later and always before the same
app's next call with effects is admitted. This module holds those records between the call and
their commit.

How the two promises are kept:
- *within the window*: the first record put in an empty batch wakes a flusher thread, which
  waits `window_s` (less than the 10 ms the rule allows: the commit itself takes time) and
  commits every record waiting, in one transaction.
- *before any call with effects*: every other write on the audit log — a decision with effects,
  a denial, an outcome, any operator or lifecycle record — opens its transaction through
  `writing()`, which appends the waiting records first, in the same transaction. So a call with
  effects is never admitted unless the reads before it are durable with its own decision. One
  lock (`_commit`) orders the flusher's commit and every other write, so a record taken out of
  the batch by one thread cannot still be uncommitted when another thread admits a write.
- a transaction that rolls back puts its reads back at the front of the batch: a failed write
  never loses another call's record.

What a crash loses: the records still waiting (the reads served in the last window, at most
10 ms of them), never a record of a call with effects, never one that a later commit depended
on. The chain stays whole: a record gets its seq and hash only when it is committed.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

from host.ledger.audit import append_in
from host.store import Conn, Store

# How long the first read in an empty batch waits before its group commit. DESIGN rule 9 allows
# 10 ms from the read to its durable record; half of it leaves the commit (and a busy scheduler
# on a 2-core machine) the other half.
GROUP_COMMIT_S = 0.005

# After a failed group commit (a full or failing disk), wait this long before the next try
# rather than spinning on the error; a write in the meantime commits the records or is refused.
_RETRY_S = 0.1

log = logging.getLogger("stockade.ledger")


class ReadBatch:
    """Reads' records (canonical body, decision time) waiting for their group commit."""

    def __init__(self, store: Store, window_s: float = GROUP_COMMIT_S,
                 on_commit: Callable[[int, int], None] | None = None) -> None:
        if not 0 < window_s <= 0.01:
            raise ValueError("a read's record must be durable within 10 ms (DESIGN rule 9)")
        self.store = store
        self.window_s = window_s
        self._on_commit = on_commit or (lambda _first, _last: None)
        self._lock = threading.Lock()  # guards _pending (held for a list operation only)
        self._commit = threading.RLock()  # orders every audit transaction of this process
        self._pending: list[tuple[str, float]] = []
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, body: str, ts: float) -> None:
        """Hold one validated canonical body until the next commit on this log."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            self._pending.append((body, ts))
            first = len(self._pending) == 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stockade-group-commit",
                                                daemon=True)
                self._thread.start()
        if first:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Conn]:
        """One write transaction that commits the waiting reads first (see the docstring)."""
        with self._commit:
            with self._lock:
                taken, self._pending = self._pending, []
            try:
                with self.store.transaction() as c:
                    first = last = 0
                    for body, ts in taken:
                        last = append_in(c, body, ts)
                        first = first or last
                    yield c
            except BaseException:
                with self._lock:
                    self._pending[:0] = taken
                raise
            if taken:
                self._on_commit(first, last)

    def flush(self) -> None:
        """Commit every waiting record now (the flusher, a reader, close)."""
        if not self.pending():
            return
        with self.writing():
            pass

    def close(self) -> None:
        """Commit what waits and stop the flusher; later reads are refused."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
            # Gather the window's reads, then commit them in one transaction.
            time.sleep(self.window_s)
            try:
                self.flush()
            except (sqlite3.Error, OSError):
                # The records stay in the batch: the next write on this log commits them with
                # its own decision, or refuses the write.
                log.warning("group commit of read records failed; retried with the next write",
                            exc_info=True)
                self._wake.set()
                time.sleep(_RETRY_S)
