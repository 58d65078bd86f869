"""Audit chains in tests: reading a home's records, and tampering with a chain as an attacker
who can write host.db (not the anchor's key) would (the audit anchor's tests and the
store-fault tests)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from host.home import Home
from host.ledger.audit import GENESIS_HASH, AuditRecord, chain_hash


def rewrite_anchored(db: Path, extra: int = 1) -> None:
    """Edit an anchored record (`"r1"` becomes `"rX"`), re-hash every later one (knowing the
    scheme) and append `extra` forged records: a chain only the anchor can tell is rewritten."""
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("DROP TRIGGER IF EXISTS audit_no_update")
    rows = c.execute("SELECT seq, ts, body FROM audit ORDER BY seq").fetchall()
    prev = GENESIS_HASH
    for seq, ts, body in rows:
        body = body.replace('"r1"', '"rX"')
        h = chain_hash(prev, seq, ts, body)
        c.execute("UPDATE audit SET body=?, prev_hash=?, hash=? WHERE seq=?", (body, prev, h, seq))
        prev = h
    seq, ts = rows[-1][0], rows[-1][1]
    for _ in range(extra):
        seq, ts = seq + 1, ts + 1.0
        body = AuditRecord(kind="supervisor", event="test", detail="forged").body()
        h = chain_hash(prev, seq, ts, body)
        c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)", (seq, ts, body, prev, h))
        prev = h
    c.close()


def audit_bodies(home: Home) -> list[dict[str, Any]]:
    """Every audit record's body in the home's host.db, in chain order (read directly)."""
    conn = sqlite3.connect(home.host_db)
    try:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]
    finally:
        conn.close()
