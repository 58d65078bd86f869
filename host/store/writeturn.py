"""Taking a SQLite file's write lock without the busy handler's sleeps.

Every write transaction on a home's SQLite files starts with `BEGIN IMMEDIATE`
(`host.store.sqlite.immediate`). When another connection holds the write lock, SQLite's own busy
handler (what `busy_timeout` installs) sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms between tries,
whatever the holder's transaction costs; the gate's and the server's transactions take 0.1-0.5
ms. With the embedded server's tables in host.db (DESIGN rule 9), the host's threads and the
REST front process all write the one file, and under the REST load at 50 conversations/s one
`BEGIN` in five of the front's slept a millisecond or more (p99 8.4 ms; 17 in 2 000 with the
server's tables apart): the event delay's and the REST call's tails were those sleeps
(docs/BENCH.md, "Waiting for the write lock").

So a writer waits in two stages, neither of them SQLite's sleep:

1. Within one process, on a `threading.Lock` per file (`WriteTurn`): the host's threads queue in
   the kernel and the next one wakes the moment the holder's `COMMIT` is done.
2. Across processes, by retrying `BEGIN IMMEDIATE` with the busy handler off, after sleeps that
   start at `FIRST_POLL_S` and double up to `MAX_POLL_S`, for as long as the connection's
   `busy_timeout` (so a wedged peer still fails as before, "database is locked").

The lock only orders writers; SQLite's lock is still what makes a transaction exclusive. A writer
that does not take the turn (a one-shot command's `BEGIN` of its own) is still correct; it only
waits SQLite's way.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from time import monotonic, sleep

# The retries' first sleep and their cap (s). The transactions they wait for take 0.1-0.5 ms, so
# the first tries land near their end; the cap bounds the statements a long wait costs (a few
# µs of CPU a try, on a core the holder may need).
FIRST_POLL_S = 50e-6
MAX_POLL_S = 1e-3


class WriteTurn:
    """One process's queue for one SQLite file's write lock (`turn_for`)."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


_turns: dict[str, WriteTurn] = {}
_turns_lock = threading.Lock()


def turn_for(where: str) -> WriteTurn:
    """The turn for the file at `where` (an absolute path), one per process."""
    turn = _turns.get(where)
    if turn is None:
        with _turns_lock:
            turn = _turns.setdefault(where, WriteTurn())
    return turn


def _forget_turns() -> None:
    # A child forked while a parent's thread held a turn would inherit that lock held, with no
    # thread left to release it: the child starts with turns of its own.
    global _turns_lock
    _turns.clear()
    _turns_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_turns)


def begin(c: sqlite3.Connection, turn: WriteTurn, busy_timeout_ms: int) -> None:
    """`BEGIN IMMEDIATE` on `c` (whose `busy_timeout` is `busy_timeout_ms`), holding `turn.lock`
    on return: the caller releases it after its COMMIT or ROLLBACK. Raises what SQLite raises
    ("database is locked" once `busy_timeout_ms` has passed) without the turn held."""
    if c.in_transaction:
        c.execute("BEGIN IMMEDIATE")  # raises: a transaction is already open on `c`
    if not turn.lock.acquire(timeout=busy_timeout_ms / 1000):
        raise sqlite3.OperationalError(
            f"database is locked (another thread of this process held the write lock for "
            f"{busy_timeout_ms / 1000:g} s)")
    try:
        _begin_polling(c, busy_timeout_ms)
    except BaseException:
        # A BEGIN that went through before the failure (a Ctrl-C in the busy timeout's
        # restore) is ended here: the caller's `with` is not open yet to do it.
        if c.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
        turn.lock.release()
        raise


def _begin_polling(c: sqlite3.Connection, busy_timeout_ms: int) -> None:
    c.execute("PRAGMA busy_timeout=0")
    try:
        pause, deadline = FIRST_POLL_S, monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                c.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or monotonic() + pause > deadline:
                    raise
            sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)
    finally:
        c.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def _busy(exc: sqlite3.OperationalError) -> bool:
    # The primary code: SQLITE_BUSY and its extended forms (a recovery, a snapshot).
    return (exc.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_BUSY
