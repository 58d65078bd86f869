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
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from host.store import Conn

# Per open scope (by connection): the head this transaction wrote last, or None before its
# first append. A connection is used by one thread at a time, and its entry lives only while
# the `with` holding it does, so an id is never reused under a live entry.
_SCOPES: dict[int, tuple[int, str] | None] = {}


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


def wrote(conn: Conn, seq: int, digest: str) -> None:
    """The transaction on `conn` appended record `seq` with hash `digest` (now the head)."""
    key = id(conn)
    if key in _SCOPES:
        _SCOPES[key] = (seq, digest)


def forget(conn: Conn) -> None:
    """Part of the transaction on `conn` was rolled back (to a savepoint), perhaps a record it
    had appended: the next append reads the head from the table again."""
    key = id(conn)
    if key in _SCOPES:
        _SCOPES[key] = None
