"""Reading the audit table's rows so that no stored value can stop the reader.

SQLite stores whatever bytes a writer gives a TEXT column: someone who can write host.db can
store a body, hash or time that is not UTF-8 (`CAST(x'ff' AS TEXT)`), and Python's sqlite3
raises `OperationalError` ("Could not decode to UTF-8 column") when it fetches that row, ending
the reader: `audit verify` gave no verdict, `audit tail` and `audit show` showed nothing, and
`serve`, even with `--degraded`, stopped with an unexpected error instead of naming the
record. So on SQLite the text columns are fetched as bytes and decoded here: a value that is
not UTF-8 text stays bytes (no `str`), which the walk reports as an edited record and the
reading tools show as no valid record; a time stored as text is no time (None). And `seq`, an
integer key in the host's table, is whatever a table made again with an untyped column holds
(text, bytes or NULL raised TypeError out of the walk, an infinite one OverflowError out of
`audit tail`): any value that is no integer reads as NO_SEQ, which the walk reports. The host
writes only ASCII bodies and hex hashes, so a record it wrote reads exactly as before.
PostgreSQL refuses text that is not UTF-8 on the way in, so its rows are read as they are.
"""
from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Generator, Sequence
from typing import Any

from host.store import Conn

# What a row's seq reads as when the stored value is no integer: no record has it.
NO_SEQ = -1
# Each text column as its bytes and whether it holds text, the time only when it is a number.
_SQLITE_COLUMNS = (
    f"CASE WHEN typeof(seq) = 'integer' THEN seq ELSE {NO_SEQ} END,"
    " CASE WHEN typeof(ts) IN ('real', 'integer') THEN ts END,"
    " CAST(body AS BLOB), typeof(body) = 'text',"
    " CAST(prev_hash AS BLOB), typeof(prev_hash) = 'text',"
    " CAST(hash AS BLOB), typeof(hash) = 'text'")
_COLUMNS = "seq, ts, body, prev_hash, hash"
# The same row with the text columns left to sqlite3 (decoded in C): what every row the host
# wrote reads as, at the cost of the plain SELECT; `rows` falls back to `_SQLITE_COLUMNS` only
# when a value is no UTF-8 text (a walk of 10^6 records paid ~15 % more reading every row so).
_FAST_COLUMNS = (
    f"CASE WHEN typeof(seq) = 'integer' THEN seq ELSE {NO_SEQ} END,"
    " CASE WHEN typeof(ts) IN ('real', 'integer') THEN ts END, body, prev_hash, hash")


def _text(value: object, is_text: object) -> object:
    """A stored text value as `str`, or as the bytes it holds when those are no UTF-8 text."""
    if not is_text or not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


Row = tuple[Any, ...]


def rows(conn: Conn, rest: str = "", parameters: Sequence[Any] = ()
         ) -> Generator[Row, None, None]:
    """`SELECT seq, ts, body, prev_hash, hash FROM audit <rest>` row by row, never raising on
    what a column holds (see the module docstring). Closing the iterator closes the cursor."""
    if not isinstance(conn, sqlite3.Connection):
        cur = conn.execute(f"SELECT {_COLUMNS} FROM audit {rest}", parameters)  # noqa: S608 - constant SQL
        try:
            yield from cur
        finally:
            _close(cur)
        return
    given = 0
    cur = conn.execute(f"SELECT {_FAST_COLUMNS} FROM audit {rest}", parameters)  # noqa: S608 - constant SQL
    try:
        for row in cur:
            given += 1
            yield row
        return
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    finally:
        _close(cur)
    # A value that is no UTF-8 text: the same query again, in the same order, each text column
    # as its bytes, past the rows already given.
    cur = conn.execute(f"SELECT {_SQLITE_COLUMNS} FROM audit {rest}", parameters)  # noqa: S608 - constant SQL
    try:
        for i, (seq, ts, body, bt, prev, pt, h, ht) in enumerate(cur):
            if i >= given:
                yield seq, ts, _text(body, bt), _text(prev, pt), _text(h, ht)
    finally:
        _close(cur)


def _close(cur: Any) -> None:
    # A walk ended by an error leaves its iterator to the collector, which may close it after
    # its connection was closed: the cursor is gone with it then.
    with contextlib.suppress(Exception):
        cur.close()


def head(conn: Conn) -> tuple[int, Any] | None:
    """The newest row's (seq, hash), the hash as `rows` gives it; None when there is none. Only
    a row whose seq is an integer is the head: text and bytes sort after every integer, and a
    segment started after such a "head" was refused for its seq (no --degraded start)."""
    found = rows(conn, "ORDER BY seq DESC LIMIT 1" if not isinstance(conn, sqlite3.Connection)
                 else "WHERE typeof(seq) = 'integer' ORDER BY seq DESC LIMIT 1")
    try:
        row = next(found, None)
    finally:
        found.close()
    return None if row is None else (int(row[0]), row[4])


__all__ = ["NO_SEQ", "Row", "head", "rows"]
