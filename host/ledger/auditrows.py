"""Reading the audit table's rows so that no stored value can stop the reader.

SQLite stores whatever bytes a writer gives a TEXT column: someone who can write host.db can
store a body, hash or time that is not UTF-8 (`CAST(x'ff' AS TEXT)`), and Python's sqlite3
raises `OperationalError` ("Could not decode to UTF-8 column") when it fetches that row, ending
the reader: `audit verify` gave no verdict, `audit tail` and `audit show` showed nothing, and
`serve`, even with `--degraded`, stopped with an unexpected error instead of naming the
record. So on SQLite the text columns are fetched as bytes and decoded here: a value that is
not UTF-8 text stays bytes (no `str`), which the walk reports as an edited record and the
reading tools show as no valid record; a time stored as text is no time (None). The host writes
only ASCII bodies and hex hashes, so a record it wrote reads exactly as before. PostgreSQL
refuses text that is not UTF-8 on the way in, so its rows are read as they are.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Generator, Sequence
from typing import Any

from host.store import Conn

# Each text column as its bytes and whether it holds text, the time only when it is a number.
_SQLITE_COLUMNS = (
    "seq, CASE WHEN typeof(ts) IN ('real', 'integer') THEN ts END,"
    " CAST(body AS BLOB), typeof(body) = 'text',"
    " CAST(prev_hash AS BLOB), typeof(prev_hash) = 'text',"
    " CAST(hash AS BLOB), typeof(hash) = 'text'")
_COLUMNS = "seq, ts, body, prev_hash, hash"


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
            cur.close()
        return
    cur = conn.execute(f"SELECT {_SQLITE_COLUMNS} FROM audit {rest}", parameters)  # noqa: S608 - constant SQL
    try:
        for seq, ts, body, bt, prev, pt, h, ht in cur:
            yield seq, ts, _text(body, bt), _text(prev, pt), _text(h, ht)
    finally:
        cur.close()


def head(conn: Conn) -> tuple[int, Any] | None:
    """The newest row's (seq, hash), the hash as `rows` gives it; None when there is none."""
    found = rows(conn, "ORDER BY seq DESC LIMIT 1")
    try:
        row = next(found, None)
    finally:
        found.close()
    return None if row is None else (int(row[0]), row[4])


__all__ = ["Row", "head", "rows"]
