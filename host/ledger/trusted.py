"""The audit chain's head this process trusts: the newest record it verified, or wrote onto one.

The anchor may only move over records verified from the anchor onward (else anyone who can
write `host.db` rewrites the chain and waits for any process to re-sign it). Walking the chain
before every anchoring would put a verify on the bridge call's path, so each process keeps
the (seq, hash) it knows good: set by a verify (`AuditLog.verify`, or the walk from the anchor
before an anchoring), and moved forward, with no read, over every run of records this process
committed onto it (`chainhead.Recording` notes each run as computed when it was appended). A
run that chains onto any other hash (the table changed under this process, or another process
appended in between) does not move it: the next anchoring then walks those records from the
table, and refuses if they do not verify.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

from host.ledger.chainhead import Run

# Most runs kept waiting for a gap before them to be verified (another process's records).
# Guards memory in a process that never anchors while others append between its commits: past
# it the waiting runs are dropped, and the next anchoring walks their records instead.
MAX_WAITING_RUNS = 1024


class TrustedHead:
    """The (seq, hash) this process knows descends from the anchor (None: nothing yet)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # appends commit on several threads
        self._head: tuple[int, str] | None = None
        # Committed runs not yet joined to the head, by first seq: (prev, last seq, last hash).
        self._waiting: dict[int, tuple[str, int, str]] = {}

    def get(self) -> tuple[int, str] | None:
        with self._lock:
            return self._head

    def verified(self, head: tuple[int, str], *, restart: bool = False) -> None:
        """Records up to `head` verified: trust moves forward to it (never back, unless
        `restart`: a new segment this process has just written)."""
        with self._lock:
            if restart or self._head is None or head[0] > self._head[0]:
                self._head = head
            self._join()

    def appended(self, runs: Sequence[Run]) -> None:
        """Runs this process has committed (`chainhead.Recording`)."""
        if not runs:
            return
        with self._lock:
            if self._head is None:
                return  # nothing to join them to: an anchoring walks them from the table
            for first, prev, last, digest in runs:
                self._waiting[first] = (prev, last, digest)
            self._join()

    def _join(self) -> None:
        head = self._head
        if head is None:
            self._waiting.clear()
            return
        while (run := self._waiting.pop(head[0] + 1, None)) is not None:
            prev, last, digest = run
            if prev != head[1]:
                break  # chained onto a hash this process does not trust: walked later
            head = (last, digest)
        self._head = head
        if self._waiting and (len(self._waiting) > MAX_WAITING_RUNS
                              or min(self._waiting) <= head[0]):
            self._waiting = {k: v for k, v in self._waiting.items()
                             if k > head[0]} if len(self._waiting) <= MAX_WAITING_RUNS else {}


__all__ = ["MAX_WAITING_RUNS", "TrustedHead"]
