"""Group commit of reads' decision records (DESIGN rule 9).

A read changes nothing on the server, so its allow record need not be durable before the read
is served: rule 9 lets it be group-committed, at most 10 ms later and always before the same
app's next call with effects is admitted. This module holds those records between the call and
their commit.

How the two promises are kept:
- *within the window*: the first record put in an empty batch wakes a flusher thread, which
  waits until the oldest waiting record is `window_s` old (less than the 10 ms the rule allows:
  the commit itself takes time) and commits every record waiting, in one transaction. When
  reads stream in, a call that finds the oldest record `INLINE_SHARE` of the window old commits
  them itself, on its own thread, before that (the flusher then finds nothing to do).
- *before any call with effects*: every other write on the audit log — a decision with effects,
  a denial, an outcome, any operator or lifecycle record — opens its transaction through
  `writing()`, which appends the waiting records first, in the same transaction. So a call with
  effects is never admitted unless the reads before it are durable with its own decision. One
  lock (`_commit`) orders the flusher's commit and every other write, so a record taken out of
  the batch by one thread cannot still be uncommitted when another thread admits a write.
- a transaction that rolls back puts its reads back at the front of the batch: a failed write
  never loses another call's record.
- *when commits fail* (a full disk, an unreachable store) *or stall* (another process holds
  the store's write lock): a read held while a record waiting, or taken by a commit not yet
  finished, is older than the rule's 10 ms commits the batch first, on its own thread, or
  waits for that commit, or is refused with the store's error and holds nothing
  (`READ_RECORD_WAIT_S`). So no read is served past the bound, and the batch cannot grow
  while the store refuses every commit.

A read under a quota (the shipped baseline rates every call) is admitted durably, its units
with its decision and an intent row, like a call with effects. Only its *outcome*, on success,
waits here (`add(..., clears=seq)`): the outcome record and the removal of its intent row commit
together in the next commit on the log, usually the next call's admission. A success keeps the
units, so the wait changes no quota. A refusal by the server may wait as well (`defer`): its
record, the removal of its intent and its refund run inside the next commit on the log, before
that commit's own statements, so a later admission on this host sees the unit back. A
server write's success may wait the same way when the server's op log settles it after a crash
(`Gate._outcome_may_wait`); its decision was durable before the server saw it, as ever.

What a crash loses: the records still waiting (the reads served in the last window, at most
10 ms of them), never a record of a call with effects, never one that a later commit depended
on. A call whose success was waiting keeps its intent row, and the next start settles it
(`Ledger.settle`): a read as `outcome_unknown` with its units kept (it may have been served), a
write from the server's op log. The chain stays whole: a record gets its seq and hash only when
it is committed.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from host.ledger import chainhead
from host.ledger.audit import GENESIS_HASH, chain_hash
from host.store import DB_ERRORS, INTEGRITY_ERRORS, Conn, Store, StoreError
from host.store.diskfull import disk_full_notice
from host.store.sqlite import disk_full

# How long the oldest read in the batch waits, at most, for its group commit. DESIGN rule 9 allows
# 10 ms from the read to its durable record; half of it leaves the commit (and a busy scheduler
# on a 2-core machine) the other half.
GROUP_COMMIT_S = 0.005

# DESIGN rule 9's bound on a read's wait for its durable record. A read held when a waiting
# record is older than this (its commit failed, or is late) commits the batch on its own thread
# first or is refused (`ReadBatch._hold`): no read is served past the bound, and the batch
# cannot grow while the store refuses every commit.
READ_RECORD_WAIT_S = 0.010

# A call that finds the oldest waiting record this share of the window old commits the batch
# itself, on its own thread. When reads stream in, the flusher thread then rarely runs: its
# commit competed with the calls for the interpreter lock from the other core, and each of its
# statements handed the lock across cores twice (measured: 45 µs of the flusher's CPU per read
# and ~100 µs more of the caller's, docs/BENCH.md "Group commit on the caller's thread").
INLINE_SHARE = 0.6

# After a failed group commit (a full or failing disk), wait this long before the next try
# rather than spinning on the error; a write in the meantime commits the records or is refused.
_RETRY_S = 0.1

# What a failed group commit raises (a full or failing disk, an unreachable PostgreSQL store):
# the records stay in the batch, and the next write commits them or is refused. StoreError too
# (a store it cannot reach: a PostgreSQL restart), which ended the flusher thread for good.
_COMMIT_FAILURES: tuple[type[Exception], ...] = (*DB_ERRORS, StoreError, OSError)

log = logging.getLogger("stockade.ledger")


def append_many_in(conn: Conn, items: Sequence[tuple[str, float]]) -> tuple[int, int]:
    """Append validated (body, ts) pairs in order inside the caller's write transaction: the
    rows successive `append_in` calls would write, with one head look-up and one batched
    INSERT (a group commit's reads; ~20 -> ~8 µs a record here). Returns (first, last) seq."""
    head = chainhead.last(conn)
    seq, prev = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
    first, start = seq, prev
    rows = []
    for body, ts in items:
        digest = chain_hash(prev, seq, ts, body)
        rows.append((seq, ts, body, prev, digest))
        prev, seq = digest, seq + 1
    conn.executemany("INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)",
                     rows)
    chainhead.wrote(conn, first, start, seq - 1, prev)
    return first, seq - 1


class CommitLock:
    """A re-entrant lock that knows whether the calling thread holds it: a thread inside a
    write on the log (or holding commits off) must not commit the batch from `add`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, blocking: bool = True) -> bool:
        if not self._lock.acquire(blocking):
            return False
        self._owner = threading.get_ident()
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def held_here(self) -> bool:
        return self._owner == threading.get_ident()

    def __enter__(self) -> CommitLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ReadBatch:
    """Reads' records (canonical body, decision time) waiting for their group commit."""

    def __init__(self, store: Store, window_s: float = GROUP_COMMIT_S,
                 on_commit: Callable[[int, int], None] | None = None,
                 appended: Callable[[Sequence[chainhead.Run]], None] | None = None) -> None:
        """`on_commit(first, last)`: the held records and work a commit wrote; `appended`:
        every run of records a commit wrote, the caller's too (`chainhead.Recording`)."""
        if not 0 < window_s <= 0.01:
            raise ValueError("a read's record must be durable within 10 ms (DESIGN rule 9)")
        self.store = store
        self.window_s = window_s
        self._on_commit = on_commit or (lambda _first, _last: None)
        self._appended = appended or (lambda _runs: None)
        self._lock = threading.Lock()  # guards _pending, _clears, _deferred (a list operation)
        self._commit = CommitLock()  # orders every audit transaction of this process
        self._pending: list[tuple[str, float]] = []
        # Intent rows (by decision seq) that the waiting outcome records close: deleted in the
        # same commit as those records, never before.
        self._clears: list[int] = []
        # Work run in the next commit's transaction after the waiting records: a refused call's
        # outcome, whose refund lands with its record (`Ledger.hold_refusal`). Each appends one
        # record and returns its seq.
        self._deferred: list[Callable[[Conn], int]] = []
        self._wake = threading.Event()
        self._opened = 0.0  # monotonic time the oldest waiting record was added
        self._closed = False
        self._thread: threading.Thread | None = None
        # The flusher's state (see `_run`): `_idle` while it waits for a wake-up, which only the
        # first record added then sends; `_quiet` while nothing was added since it last looked.
        self._idle = True
        self._quiet = True
        # A commit has taken records or work out of the batch and not yet finished: `flush`
        # waits for it, or a reader could look between the take and the COMMIT and miss them.
        self._in_flight = 0
        # While such a commit runs: when the oldest record it took was added (`_opened` at the
        # take). Its records are no more durable than waiting ones, so a read held while they
        # are past rule 9's bound is late too (`_hold`); before, a commit stuck on the store's
        # write lock (another process's transaction) emptied the batch, and reads were served
        # with no durable record for as long as it stayed stuck.
        self._flight_opened: float | None = None

    def add(self, body: str, ts: float, clears: int | None = None) -> None:
        """Hold one validated canonical body until the next commit on this log; `clears` is the
        seq of the intent row that record closes (a rated read's outcome), deleted with it."""
        self._hold((body, ts), clears, None)

    def defer(self, work: Callable[[Conn], int]) -> None:
        """Run `work` in the next commit on this log, after the waiting records: it waits as
        they do (the same window, the same flusher) and a rollback puts it back. It appends one
        record (its outcome, with whatever it must change with it) and returns its seq."""
        self._hold(None, None, work)

    def _hold(self, item: tuple[str, float] | None, clears: int | None,
              work: Callable[[Conn], int] | None) -> None:
        now = time.monotonic()
        read = item is not None and clears is None  # a read's record: the read is served
        with self._lock:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            first = not self._pending and not self._deferred
            since = now if first else self._opened  # the oldest record not yet durable
            if self._flight_opened is not None and self._flight_opened < since \
                    and not self._commit.held_here():
                since = self._flight_opened
            late = read and now - since > READ_RECORD_WAIT_S
            if late:
                due = wake = False
            else:
                if item is not None:
                    self._pending.append(item)
                if clears is not None:
                    self._clears.append(clears)
                if work is not None:
                    self._deferred.append(work)
                if first:
                    self._opened = now
                due = not first and now - self._opened >= self.window_s * INLINE_SHARE
                wake, self._idle, self._quiet = self._idle, False, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stockade-group-commit",
                                                daemon=True)
                self._thread.start()
        if late:
            # Past rule 9's bound (`READ_RECORD_WAIT_S`): what waits commits first, on this
            # thread, or the store's failure refuses this read, which then holds nothing.
            self.flush()
            self._hold(item, clears, work)
        elif wake:
            self._wake.set()
        elif due:
            self._flush_here()

    def _flush_here(self) -> None:
        """Commit the waiting reads on the calling thread (`INLINE_SHARE`, module docstring); a
        commit already under way, or one that fails, is left to the flusher."""
        if self._commit.held_here() or not self._commit.acquire(blocking=False):
            return
        try:
            self.flush()
        except _COMMIT_FAILURES:
            self._wake.set()  # the flusher retries and logs
        finally:
            self._commit.release()

    def exclusive(self) -> CommitLock:
        """Hold off every other transaction on this log in this process (re-entrant: the
        holder's own writes still pass). A policy reload records its revision and makes it
        active under it (`host.gate.policywatch`), so no admission commits in between."""
        return self._commit

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._deferred)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Conn]:
        """One write transaction that commits the waiting reads first (see the docstring)."""
        with self._commit:
            with self._lock:
                taken, self._pending = self._pending, []
                clears, self._clears = self._clears, []
                deferred, self._deferred = self._deferred, []
                took = bool(taken or clears or deferred)
                self._in_flight += took
                opened = self._opened
                if took:
                    self._flight_opened = opened
            runs: Sequence[chainhead.Run] = ()
            try:
                with self.store.transaction() as c, chainhead.known_within(c), \
                        chainhead.Recording(c) as runs:
                    first, last = append_many_in(c, taken) if taken else (0, 0)
                    if clears:
                        c.executemany("DELETE FROM audit_intents WHERE seq=?",
                                      [(seq,) for seq in clears])
                    for work in tuple(deferred):
                        c.execute("SAVEPOINT held_work")
                        try:
                            done = work(c)
                        except Exception as exc:
                            if isinstance(exc, _COMMIT_FAILURES) and not isinstance(
                                    exc, INTEGRITY_ERRORS):
                                raise  # the store's trouble: this commit fails, retried later
                            # Not the store's trouble (or a constraint it will break again):
                            # it would fail every later commit too. Undone and dropped (its
                            # intent stays for the next start to settle); the records around
                            # it and the caller's own statements commit, and no caller sees
                            # this work's error.
                            c.execute("ROLLBACK TO SAVEPOINT held_work")
                            c.execute("RELEASE SAVEPOINT held_work")
                            chainhead.forget(c)  # it may have appended before it failed
                            deferred.remove(work)
                            log.exception("a held outcome could not be recorded; its call is "
                                          "left for settlement at the next start")
                            continue
                        c.execute("RELEASE SAVEPOINT held_work")
                        last = done
                        first = first or last
                    yield c
            except BaseException as exc:
                if not (isinstance(exc, DB_ERRORS) and self._committed_anyway(runs)):
                    with self._lock:
                        if took:  # put back: the batch is as old as its oldest record
                            self._opened = (min(self._opened, opened)
                                            if self._pending or self._deferred else opened)
                        self._pending[:0] = taken
                        self._clears[:0] = clears
                        self._deferred[:0] = deferred
                    raise
                # The COMMIT went through and only its answer was lost (a PostgreSQL
                # connection cut during COMMIT): the work is done, and putting it back would
                # append every held record a second time (two outcomes for one call).
                log.warning("the store's answer to a commit was lost, but the commit is on "
                            "record (seq %d): nothing is written twice", runs[-1][2])
            finally:
                if took:
                    with self._lock:
                        self._in_flight -= 1
                        self._flight_opened = None
            self._appended(runs)  # committed: before anything anchors them (`on_commit`)
            if first:
                self._on_commit(first, last)

    def _committed_anyway(self, runs: Sequence[chainhead.Run]) -> bool:
        """Whether a transaction that failed had committed after all: its last record is on
        record with the hash it was given (asked on a fresh connection where the old one
        broke). False when it appended nothing, or when the store cannot say."""
        if not runs:
            return False
        _first, _prev, last, digest = runs[-1]
        try:
            row = self.store.conn().execute("SELECT hash FROM audit WHERE seq = ?",
                                            (last,)).fetchone()
        except Exception:  # noqa: BLE001 - unknown: treated as not committed, as before
            return False
        return row is not None and str(row[0]) == digest

    def flush(self) -> None:
        """Commit every waiting record now (the flusher, a reader, close). Records another
        thread's commit has taken but not yet committed are waited for: when this returns,
        everything held before the call is committed (or its commit failed and raised)."""
        while True:
            with self._lock:
                waiting = bool(self._pending or self._deferred)
                in_flight = self._in_flight
            if waiting:
                with self.writing():
                    pass
                return
            if not in_flight or self._commit.held_here():
                return
            with self._commit:  # the commit under way ends (or puts its records back)
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
        """The flusher: commits each waiting record once it is `window_s` old, unless a write
        committed it first. It stays awake while records keep coming (a timed sleep, no wake-up
        from the callers) and goes idle after a whole window with none, so a stream of calls
        costs it one wake-up per window, not one per call: when every call's own admission
        commits the record before it (a rated read's outcome, `Ledger.hold_outcome`), a wake-up
        per call cost the caller ~60 µs of CPU in the hand-over of the interpreter lock."""
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if self._closed:
                        return
                    if self._pending or self._deferred:
                        wait = self.window_s - (time.monotonic() - self._opened)
                    elif self._quiet:
                        self._idle = True  # the next `add` wakes it (the Event keeps the wake)
                        break
                    else:
                        self._quiet, wait = True, self.window_s
                if wait > 0:
                    time.sleep(wait)
                    continue
                try:
                    self.flush()
                except _COMMIT_FAILURES as exc:
                    # The records stay in the batch: the next write on this log commits them
                    # with its own decision, or refuses the write. A full disk is the
                    # operator's to fix, reported in the process's one line (no traceback).
                    if disk_full(exc):
                        disk_full_notice.refused("the group commit of reads' audit records")
                    else:
                        log.warning("group commit of read records failed; retried with the "
                                    "next write", exc_info=True)
                    time.sleep(_RETRY_S)
                except Exception:  # the flusher outlives what it did not expect
                    # Ended, it left the last reads before a quiet spell uncommitted until the
                    # next call or the close: a crash then lost reads older than rule 9's
                    # 10 ms. A driver's raw error did so during a store restart (now a
                    # StoreError); whatever comes next is logged and retried the same way.
                    log.exception("group commit of read records failed unexpectedly; retried")
                    time.sleep(_RETRY_S)
