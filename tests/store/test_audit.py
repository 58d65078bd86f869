"""The audit chain: verify passes on a good chain and finds every kind of tampering."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import (
    AuditError,
    AuditLog,
    AuditRecord,
    chain_hash,
    digest_args,
    escape_text,
)

T0 = 1_700_000_000.0


def _log(tmp_path: Path, every: int = 4) -> AuditLog:
    return AuditLog(tmp_path / "host.db", ManualClock(T0), anchor_every=every)


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append(AuditRecord(kind="decision", allowed=True, code="allow", app_id="agent-sync",
                               install_id="i1", action="users.create", op_id=f"op{i}",
                               args_digest=digest_args({"username": f"u{i}"})))


def _raw(tmp_path: Path) -> sqlite3.Connection:
    """An attacker with write access to host.db: drops the append-only triggers first."""
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    c.execute("DROP TRIGGER audit_no_update")
    c.execute("DROP TRIGGER audit_no_delete")
    return c


def test_good_chain_verifies(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 10)
    r = log.verify()
    assert r.ok and r.records == 10 and r.last_seq == 10 and r.anchor is not None
    log.close()
    r = _log(tmp_path).verify()
    assert r.ok and r.anchor is not None and r.anchor.seq == 10  # close() anchors the head


def test_empty_store_verifies(tmp_path: Path) -> None:
    assert _log(tmp_path).verify().ok


def test_host_code_cannot_update_or_delete(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 2)
    c = log.store.conn()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        c.execute("UPDATE audit SET body='{}' WHERE seq=1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        c.execute("DELETE FROM audit WHERE seq=2")


def test_detects_edit(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 6)
    entry = log.show(3)
    assert entry is not None
    body = dict(entry.body)
    body["allowed"] = False
    _raw(tmp_path).execute("UPDATE audit SET body=? WHERE seq=3",
                           (json.dumps(body, sort_keys=True, separators=(",", ":")),))
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 3 and "edited" in (r.problem or "")


def test_detects_edited_timestamp(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 3)
    _raw(tmp_path).execute("UPDATE audit SET ts=ts+1 WHERE seq=2")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 2


def test_detects_delete(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 6)
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq=4")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 4 and "missing" in (r.problem or "")


def test_detects_delete_and_renumber(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 6)
    c = _raw(tmp_path)
    c.execute("DELETE FROM audit WHERE seq=4")
    c.execute("UPDATE audit SET seq=seq-1 WHERE seq>4")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 4


def test_detects_insert(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 5)
    c = _raw(tmp_path)
    c.execute("UPDATE audit SET seq=-seq WHERE seq>=3")  # make room at 3
    c.execute("UPDATE audit SET seq=1-seq WHERE seq<0")  # -3 -> 4, ..., -5 -> 6
    rows = c.execute("SELECT seq FROM audit ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 4, 5, 6]
    prev = c.execute("SELECT hash FROM audit WHERE seq=2").fetchone()[0]
    body = '{"allowed":true,"code":"allow","kind":"decision"}'
    c.execute("INSERT INTO audit VALUES(3, ?, ?, ?, ?)",
              (T0, body, prev, chain_hash(prev, 3, T0, body)))  # a well-formed forged record
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 4 and "prev_hash" in (r.problem or "")


def test_detects_reorder(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 5)
    c = _raw(tmp_path)
    c.execute("UPDATE audit SET seq=-1 WHERE seq=2")
    c.execute("UPDATE audit SET seq=2 WHERE seq=3")
    c.execute("UPDATE audit SET seq=3 WHERE seq=-1")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 2


def test_detects_truncation_of_the_newest_records(tmp_path: Path) -> None:
    log = _log(tmp_path, every=4)
    _fill(log, 9)  # anchored at seq 8
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq>=6")
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 6 and "missing" in (r.problem or "")
    assert r.anchor is not None and r.anchor.seq == 8


def test_truncation_window_is_after_the_anchor(tmp_path: Path) -> None:
    """Documented limit: records after the last anchor can be cut without detection."""
    log = _log(tmp_path, every=4)
    _fill(log, 10)  # anchored at 8
    _raw(tmp_path).execute("DELETE FROM audit WHERE seq>8")
    r = log.verify()
    assert r.ok and r.last_seq == 8


def test_detects_rewrite_with_recomputed_hashes(tmp_path: Path) -> None:
    """Someone who knows the scheme edits a record and re-hashes the rest: the anchor catches it."""
    log = _log(tmp_path, every=4)
    _fill(log, 8)
    c = _raw(tmp_path)
    rows = c.execute("SELECT seq, ts, body FROM audit ORDER BY seq").fetchall()
    prev = "0" * 64
    for seq, ts, body in rows:
        if seq == 2:
            body = body.replace('"allowed":true', '"allowed":false')
        h = chain_hash(prev, seq, ts, body)
        c.execute("UPDATE audit SET body=?, prev_hash=?, hash=? WHERE seq=?", (body, prev, h, seq))
        prev = h
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 8 and "anchor" in (r.problem or "")


def test_deleted_or_forged_anchor_is_reported(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 3)
    text = log.anchor_path.read_text()
    log.anchor_path.unlink()
    r = log.verify()
    assert not r.ok and "anchor missing" in (r.problem or "")
    parts = text.split()
    assert parts[1] == "1"
    parts[1] = "2"  # re-point the anchor without the key
    log.anchor_path.write_text(" ".join(parts) + "\n")
    r = log.verify()
    assert not r.ok and "signature" in (r.problem or "")


def test_anchor_key_is_private(tmp_path: Path) -> None:
    log = _log(tmp_path)
    assert (log.key_path.stat().st_mode & 0o777) == 0o600


def test_disallowed_fields_and_types_are_refused(tmp_path: Path) -> None:
    log = _log(tmp_path)
    for bad in ({"kind": "decision", "token": "eyJhbGciOi..."},
                {"kind": "decision", "settings": {"api_key": "s3cret"}},
                {"kind": "decision", "args": {"password": "x"}},
                {"kind": "decision", "app_id": {"nested": 1}},
                {"kind": "decision", "allowed": "yes"},
                {"kind": "decision", "args_digest": "not-a-digest"},
                {"kind": "Decision\nkind: forged"},
                {"kind": "decision", "app_id": "a" * 600}):
        with pytest.raises(AuditError):
            log.append(bad)
    assert log.verify().records == 0
    # Long free text is capped, not refused.
    seq = log.append({"kind": "decision", "message": "m" * 5000})
    assert len(log.show(seq).body["message"]) == 512  # type: ignore[union-attr]


def test_app_strings_cannot_forge_lines(tmp_path: Path) -> None:
    log = _log(tmp_path)
    evil = 'x"}\n{"seq": 99, "kind": "decision", "allowed": true}\r\x1b[2J\u2028\u202e'
    seq = log.append({"kind": "decision", "message": evil, "action": evil[:40]})
    raw = log.store.conn().execute("SELECT body FROM audit WHERE seq=?", (seq,)).fetchone()[0]
    assert "\n" not in raw and "\r" not in raw and "\x1b" not in raw and raw.isascii()
    assert log.show(seq).body["message"] == evil  # type: ignore[union-attr]  # round-trips exactly
    shown = escape_text(evil)
    assert shown.isprintable() and "\n" not in shown and "\u202e" not in shown
    assert log.verify().ok


def test_append_failure_raises(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _fill(log, 1)
    log.close()
    with pytest.raises(AuditError):
        log.append({"kind": "decision"})
    # A database that cannot be written (read-only file): the append raises, nothing is lost.
    log2 = _log(tmp_path)
    (tmp_path / "host.db").chmod(0o444)
    c = sqlite3.connect(f"file:{tmp_path / 'host.db'}?mode=ro", uri=True)
    log2.store._local.conn = c  # simulate the file becoming unwritable under a live host
    c.isolation_level = None
    with pytest.raises(AuditError):
        log2.append({"kind": "decision"})


def test_digest_args_is_canonical() -> None:
    assert digest_args({"a": 1, "b": [1, 2]}) == digest_args({"b": [1, 2], "a": 1})
    assert digest_args({"a": 1}) != digest_args({"a": 2})
