"""The PostgreSQL backend keeps the SQLite store's promises: guards in the engine, explicit
migrations, exact floats, one writer at a time."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from host.clock import ManualClock
from host.keys.registry import TokenRegistry
from host.ledger.audit import AuditLog, AuditRecord
from host.migrate import migrate, store_status
from host.store import StoreError, open_store
from host.store.base import PgError
from host.store.dialect import translate
from host.store.pg import PgStore, redacted

T0 = 1_700_000_000.123456


def _log(url: str, tmp_path: Path) -> AuditLog:
    return AuditLog(url, ManualClock(T0), anchor_path=tmp_path / "audit.anchor",
                    key_path=tmp_path / "anchor.key")


def test_a_host_never_creates_or_upgrades_a_shared_schema(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="store migrate"):
        _log(pg_url, tmp_path)
    assert all(not s.current for s in store_status(pg_url))
    states = migrate(pg_url)
    assert all(s.current for s in states)
    assert migrate(pg_url) == states  # idempotent
    _log(pg_url, tmp_path).append(AuditRecord(kind="lifecycle", app_id="a", code="x"))


def test_a_schema_from_a_newer_release_is_refused(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("UPDATE schema_meta SET version = 99 WHERE component = 'audit'")
    with pytest.raises(StoreError, match="newer than this Stockade"):
        _log(pg_url, tmp_path)
    with pytest.raises(StoreError, match="newer than this Stockade"):
        migrate(pg_url)


def test_the_audit_table_refuses_update_delete_and_truncate(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    log = _log(pg_url, tmp_path)
    seq = log.append(AuditRecord(kind="lifecycle", app_id="a", code="x"))
    store = open_store(pg_url)
    for sql in ("UPDATE audit SET body = 'x' WHERE seq = ?", "DELETE FROM audit WHERE seq = ?",
                "TRUNCATE audit"):
        with pytest.raises(PgError, match="append-only"), store.transaction() as c:
            c.execute(sql, (seq,) if "?" in sql else ())
    assert log.verify().ok and log.verify().records == 1


def test_a_revoked_token_stays_revoked(pg_url: str) -> None:
    migrate(pg_url)
    reg = TokenRegistry(pg_url)  # type: ignore[arg-type]
    with reg.store.transaction() as c:
        c.execute("INSERT INTO token_minted(jti, app_id, install_id, session_id, kid, generation,"
                  " epoch, issued_at, expires_at, host_id) VALUES('j','a','i','s','k',1,1,1,2,'h')")
    assert reg.revoke("i", 5.0, "test") == ["j"]
    with pytest.raises(PgError, match="stays revoked"), reg.store.transaction() as c:
        c.execute("UPDATE token_minted SET revoked_at = NULL WHERE jti = 'j'")
    assert reg.is_revoked("j")


def test_timestamps_survive_exactly(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL's REAL is 32-bit: the chain hashes the exact float, so it must be DOUBLE."""
    migrate(pg_url)
    log = _log(pg_url, tmp_path)
    log.append(AuditRecord(kind="lifecycle", app_id="a", code="x"))
    assert log.show(1).ts == T0  # type: ignore[union-attr]
    assert log.verify().ok


def test_writers_queue_on_one_lock(pg_url: str) -> None:
    """A second writer waits for the first's commit before its first statement runs."""
    migrate(pg_url)
    store = open_store(pg_url)
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait(5)
        with store.transaction() as c:
            order.append("second")
            c.execute("SELECT 1")

    t = threading.Thread(target=second)
    t.start()
    with store.transaction() as c:
        inside.set()
        time.sleep(0.3)
        order.append("first")
        c.execute("SELECT 1")
    t.join(5)
    assert order == ["first", "second"]


def test_the_translation_of_sqlite_spellings() -> None:
    assert translate("SELECT ?1, ?2, ?1") == ("SELECT %s, %s, %s", (0, 1, 0))
    assert translate("INSERT OR IGNORE INTO t(a) VALUES(?)")[0] == \
        "INSERT INTO t(a) VALUES(%s) ON CONFLICT DO NOTHING"
    assert translate("CREATE TABLE t(a INTEGER, b REAL, c BLOB) WITHOUT ROWID")[0] == \
        "CREATE TABLE t(a BIGINT, b DOUBLE PRECISION, c BYTEA)"
    assert translate("SELECT x FROM t WHERE y LIKE 'a%'")[0] == "SELECT x FROM t WHERE y LIKE 'a%%'"
    assert translate("SELECT json_object('r', json_group_object(k, v)), json_array(1)")[0] == \
        "SELECT json_build_object('r', json_object_agg(k, v)), json_build_array(1)"


def test_messages_never_show_the_password() -> None:
    assert redacted("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    with pytest.raises(StoreError) as err:
        PgStore("postgresql://u:secret@127.0.0.1:1/x").conn()
    assert "secret" not in str(err.value) and "cannot reach" in str(err.value)


def test_a_host_joining_a_shared_store_anchors_only_a_chain_that_verifies(
        pg_url: str, tmp_path: Path) -> None:
    """A host joining a shared store has no anchor of its own: it anchors the chain it finds
    (trust on first use), and from then on an operator's command walks only the records after
    that anchor. So the chain is walked whole before it is anchored: a record edited behind
    the append-only trigger is refused at the join, not blessed by it."""
    from host.ledger.operator import audited
    from host.ledger.records import AuditError

    migrate(pg_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    first = _log(pg_url, tmp_path / "a")
    for i in range(3):
        first.append(AuditRecord(kind="lifecycle", app_id="a", code=f"x{i}"))
    # the control: an intact chain is anchored at once by a joining host
    intact = _log(pg_url, tmp_path / "c")
    assert (tmp_path / "c" / "audit.anchor").exists() and intact.verify().ok
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("ALTER TABLE audit DISABLE TRIGGER USER")
        c.execute("UPDATE audit SET body = replace(body, 'x1', 'y1') WHERE seq = 2")
    joined = _log(pg_url, tmp_path / "b")
    assert not (tmp_path / "b" / "audit.anchor").exists()
    res = joined.verify()
    assert not res.ok and res.first_bad_seq == 2
    with pytest.raises(AuditError, match="does not verify"), \
            audited(joined, "install", app_id="x"):
        pass
    assert joined.verify().records == 3  # nothing chained onto it
