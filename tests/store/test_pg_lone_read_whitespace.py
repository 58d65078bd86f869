"""A lone SELECT that begins with whitespace is read once more on a fresh session too.

A read outside any transaction whose session had ended (a restart of the server ends them all;
`pg_terminate_backend` ends one, as here) runs once more on a new session (`PgConn.execute`),
which knows a read by the statement's first word. It looked at the first characters as they
were, so a statement written as a triple-quoted string (`host.ledger.quota._CHARGE_SQL` starts
with a newline) was not known for a read: its failure went, raw, to the caller, and each such
string had to be stripped by hand where it was used (`_CHARGE_SQL_LONE`). The recogniser now
skips leading whitespace; a write is still never run again.
"""
from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from host.ledger.quota import _CHARGE_SQL, seems_full
from host.migrate import migrate
from host.store.base import PgError
from host.store.pg import PgConn, PgStore, lone_select


def _end_session(url: str, conn: PgConn) -> None:
    pid = conn.raw.info.backend_pid
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture
def store(pg_url: str) -> Iterator[PgStore]:
    migrate(pg_url)
    s = PgStore(pg_url)
    yield s
    s.close_all()


class _Charge:
    key = "app:crm#q"
    limit = 3
    window_s = 60.0
    scope = "app"


def test_the_recogniser_skips_leading_whitespace() -> None:
    assert lone_select("SELECT 1")
    assert lone_select("\nSELECT k.cap FROM quota_keys k")
    assert lone_select(" \t\r\n SELECT 1")
    assert lone_select(_CHARGE_SQL)
    # a write is never a read, however it is laid out
    for sql in ["\nINSERT INTO t VALUES (1)", "  UPDATE t SET n = 1", "\nDELETE FROM t",
                "WITH x AS (DELETE FROM t RETURNING n) SELECT n FROM x", "", "   "]:
        assert not lone_select(sql), sql


@pytest.mark.parametrize("sql", [_CHARGE_SQL, "\n  SELECT count(*) FROM quota_keys"])
def test_a_read_with_leading_whitespace_runs_again_on_a_fresh_session(
        pg_url: str, store: PgStore, sql: str) -> None:
    old = store.conn()
    _end_session(pg_url, old)
    params = (3, _Charge.key) if sql is _CHARGE_SQL else ()
    # before: PgError "terminating connection due to administrator command" reached the caller
    old.execute(sql, params).fetchall()
    assert store.conn() is old  # the same PgConn, on a fresh session


def test_a_quota_hint_read_survives_an_ended_session(pg_url: str, store: PgStore) -> None:
    conn = store.conn()
    _end_session(pg_url, conn)
    assert seems_full(conn, _Charge(), 1000.0) is False  # an empty ring: not full


def test_a_write_with_leading_whitespace_is_not_run_again(pg_url: str,
                                                          store: PgStore) -> None:
    conn = store.conn()
    _end_session(pg_url, conn)
    with pytest.raises(PgError):
        conn.execute("\nDELETE FROM quota_keys WHERE key = ?", (_Charge.key,))
