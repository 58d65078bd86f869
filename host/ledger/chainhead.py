"""The audit chain's head, known inside one write transaction without reading it back.

Every append chains onto the newest record's (seq, hash). Inside one `BEGIN IMMEDIATE`
transaction on SQLite no other connection can append, so after the transaction's first append
the head is the record it just wrote: a transaction that appends several records (a group
commit's waiting reads and the decision that commits them; a decision and its outcome) reads
the head once instead of once a record (~15 statements a conversation in the load bench).

The memo exists only between entering and leaving `known_within` (which the group commit's
write transaction opens right after its BEGIN and closes before its COMMIT or ROLLBACK), for
that one connection. Anywhere else, and on PostgreSQL, whose shared log is ordered by its own
locking, every append reads the head from the table as before.

`Recording` keeps, for one write transaction on any store, the runs of records it appended as
they were computed (not read back): once the transaction has committed, the audit log moves
the head it trusts over each run that chains onto it (`AuditLog.appended`), so anchoring what
this process wrote needs no read and no re-hash (the anchor moves only over verified records).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from host.store import Conn

# A run of records one transaction appended: (first seq, the hash the first chained onto,
# last seq, the last one's hash).
Run = tuple[int, str, int, str]

# Per open scope (by connection): the head this transaction wrote last, or None before its
# first append. A connection is used by one thread at a time, and its entry lives only while
# the `with` holding it does, so an id is never reused under a live entry.
_SCOPES: dict[int, tuple[int, str] | None] = {}
# Per open recording (by connection): the runs this transaction appended so far.
_RUNS: dict[int, list[Run]] = {}


@contextmanager
def known_within(conn: Conn) -> Iterator[None]:
    """Remember the head this write transaction appends, until the block ends."""
    key = id(conn)
    if not isinstance(conn, sqlite3.Connection) or not conn.in_transaction or key in _SCOPES:
        yield
        return
    _SCOPES[key] = None
    try:
        yield
    finally:
        del _SCOPES[key]


def last(conn: Conn) -> tuple[int, str] | None:
    """The newest record's (seq, hash), or None when the log is empty."""
    memo = _SCOPES.get(id(conn))
    if memo is not None:
        return memo
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def wrote(conn: Conn, first: int, prev: str, seq: int, digest: str) -> None:
    """The transaction on `conn` appended records `first`..`seq`, the first chained onto `prev`
    and the last with hash `digest` (now the head)."""
    key = id(conn)
    if key in _SCOPES:
        _SCOPES[key] = (seq, digest)
    runs = _RUNS.get(key)
    if runs is not None:
        runs.append((first, prev, seq, digest))


def forget(conn: Conn) -> None:
    """Part of the transaction on `conn` was rolled back (to a savepoint), perhaps a record it
    had appended: the next append reads the head from the table again, and the runs recorded
    so far are dropped (which of them were undone is not known; the audit log then verifies
    those records from the table before anchoring them)."""
    key = id(conn)
    if key in _SCOPES:
        _SCOPES[key] = None
    runs = _RUNS.get(key)
    if runs is not None:
        runs.clear()


class Recording:
    """`with Recording(conn) as runs:` — the runs appended on `conn` until the block ends (a
    class, not a generator: it wraps every write transaction on the log). Nested in another
    recording of the same transaction, it records nothing: the outer one has them."""

    __slots__ = ("_key", "runs")

    def __init__(self, conn: Conn) -> None:
        self._key = id(conn)
        self.runs: list[Run] = []

    def __enter__(self) -> list[Run]:
        if self._key in _RUNS:
            self._key = 0
        else:
            _RUNS[self._key] = self.runs
        return self.runs

    def __exit__(self, *exc: object) -> None:
        if self._key:
            del _RUNS[self._key]
