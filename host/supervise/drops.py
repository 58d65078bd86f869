"""One app's dropped events: counted by reason, and reported in summaries, never one by one.

An event its app will never run (its queue was full, it waited too long, the app stopped or
crash-looped, a reload narrowed what it may see) fails its caller's outcome with `EventDropped`
and is counted here (`app list`'s "dropped", by reason); the host is told in a summary (a note in
the app's log and one audit record) at most once per `DROP_SUMMARY_INTERVAL_S`, the first at once.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from host.store.pool import releasing
from host.supervise.jobs import EventDropped, Job, settle_failed

# At most one audit record summarising an app's dropped events per this many seconds (the first
# drop is audited at once). Guards the audit log against an overloaded app writing one record
# per lost event, which would turn an overload into a disk-filling one (DESIGN rule 13).
DROP_SUMMARY_INTERVAL_S = 10.0


class Drops:
    """`report(detail)`: note and audit one summary (the runner's); `stopped()`: whether its
    runner is stopping (then in no upkeep's list: a summary held back is written by a timer)."""

    def __init__(self, app_id: str, report: Callable[[str], None],
                 stopped: Callable[[], bool]) -> None:
        self.app_id = app_id
        self._report = report
        self._stopped = stopped
        # Dropped events by reason (queue_full, expired); pending ones await their summary.
        self.dropped: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._last_summary = 0.0
        self.lock = threading.Lock()  # the runner's counters that other threads read use it too
        self.late_flush: threading.Timer | None = None  # see `drop`
        self._late_armed = False

    def drop(self, job: Job, why: str) -> None:
        """`job` will never run: fail its outcome and account for it (never silently)."""
        with self.lock:
            self.dropped[why] = self.dropped.get(why, 0) + 1
            key = f"{job.name}:{why}"
            self._pending[key] = self._pending.get(key, 0) + 1
            first = self._last_summary == 0.0
            now = first or time.monotonic() - self._last_summary >= DROP_SUMMARY_INTERVAL_S
            # A stopped runner is in no upkeep's list any more: a summary it holds back is
            # written by a timer once the interval is up, not left pending for good; armed
            # again for a drop after that timer's summary (armed once, it left that one out).
            timer = None
            if not now and self._stopped() and not self._late_armed:
                self._late_armed = True
                timer = self.late_flush = threading.Timer(DROP_SUMMARY_INTERVAL_S,
                                                          releasing(self._late_summary))
                timer.daemon = True
        settle_failed(job, EventDropped(
            f"{self.app_id}: event {job.name} dropped ({why.replace('_', ' ')})"))
        if now:
            self.flush()
        elif timer is not None:
            timer.start()

    def _late_summary(self) -> None:
        with self.lock:
            self._late_armed = False  # a drop from here on arms a timer of its own
        self.flush()

    def flush(self) -> None:
        """Report the drops not yet reported, as one summary (the upkeep calls this too)."""
        with self.lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            self._last_summary = time.monotonic()
        total = sum(pending.values())
        parts = ", ".join(f"{k}={n}" for k, n in sorted(pending.items()))
        self._report(f"{total} event(s) dropped: {parts}")
