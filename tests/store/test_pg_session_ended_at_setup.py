"""A PostgreSQL session the server ends between its connect and its set-up statements is a store
that cannot be reached, as a refused connect is: the store's own error, which every caller's
handling of store failures catches.

A server shutting down ends the sessions it has just accepted so. The driver's raw error escaped
`PgStore._open` and with it every such handling: during a restart (`test_pg_restart_pooled.py`,
in a full suite run) it killed the thread that group-commits reads' audit records, and the reads
after it waited for the next write to be committed. Here the session is ended for real
(`pg_terminate_backend`) right after its connect returns, before its first `SET`.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pghelp import until

from host.clock import ManualClock
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import Ledger
from host.migrate import migrate
from host.store.base import StoreError
from host.store.pg import PgStore

T0 = 1_700_000_000.0


_connect = psycopg.connect  # the driver's own, for the test's side connections


def _alive(url: str, pid: int) -> bool:
    with _connect(url, autocommit=True) as c:
        return c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() \
            is not None


def _end_next_sessions_at_setup(monkeypatch: pytest.MonkeyPatch, url: str,
                                count: int = 1) -> list[int]:
    """The next `count` sessions the store opens are ended by the server as soon as their
    connect returns. Returns the ended sessions' server pids, as they are ended."""
    ended: list[int] = []

    def connect(*args: Any, **kwargs: Any) -> Any:
        raw = _connect(*args, **kwargs)
        if len(ended) < count:
            pid = raw.info.backend_pid
            with _connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            until(lambda: not _alive(url, pid), "the session to end", 10.0)
            ended.append(pid)
        return raw

    monkeypatch.setattr(psycopg, "connect", connect)
    return ended


def test_a_session_ended_before_its_setup_is_an_unreachable_store(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PgStore(pg_url)
    try:
        ended = _end_next_sessions_at_setup(monkeypatch, pg_url)
        with pytest.raises(StoreError, match="cannot reach the store"):
            store.conn()
        assert len(ended) == 1
        assert store.conn().execute("SELECT 1").fetchone() == (1,)  # the next one serves
    finally:
        store.close_all()


def test_the_group_commit_outlives_a_session_ended_at_setup(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate(pg_url)
    led = Ledger(pg_url, ManualClock(T0), anchor_path=tmp_path / "audit.anchor",
                 key_path=tmp_path / "anchor.key", group_reads=True)
    try:
        assert led.batch is not None and not led.store.idle_count()  # the flusher opens one
        ended = _end_next_sessions_at_setup(monkeypatch, pg_url)
        read = AuditRecord(kind="decision", app_id="a1", install_id="i1", action="users.get",
                           rules=("permit.read",), policy_rev="r" * 64,
                           args_digest=digest_args({"n": 1}), write=False)
        assert led.admit(read, []).allowed  # held for the flusher, which meets the ended session

        def committed() -> bool:
            with _connect(pg_url, autocommit=True) as c:
                row = c.execute("SELECT count(*) FROM audit WHERE body LIKE %s",
                                ('%"users.get"%',)).fetchone()
            return row is not None and row[0] == 1

        until(committed, "the flusher to commit the read's record after one failed try", 10.0)
        assert len(ended) == 1
        flushers = [t for t in threading.enumerate() if t.name == "stockade-group-commit"]
        assert flushers and all(t.is_alive() for t in flushers)
    finally:
        led.close()
