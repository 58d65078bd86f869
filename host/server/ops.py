"""The `ops` table: which app-originated writes were applied, recorded in the write's own
transaction.

The host audits an intent before calling the server; after a crash it asks `was_applied(op_id)`
to tell "applied, outcome lost" from "never applied". Because the row commits atomically with the
write, the answer is exact. A retried op_id returns the stored result instead of applying twice;
reusing an op_id for a different action or different arguments is a Conflict.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from host.server.errors import Conflict


def digest(action: str, args: dict[str, Any]) -> str:
    """A stable digest of an operation's arguments (to recognise a genuine retry)."""
    blob = json.dumps([action, args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def prior_result(
    conn: sqlite3.Connection, op_id: str, action: str, args_digest: str
) -> tuple[Any] | None:
    """The stored result of an earlier application of `op_id` (wrapped in a 1-tuple), or None if
    it was never applied. Conflict when the op_id was used for something else."""
    row = conn.execute(
        "SELECT action, args_digest, result FROM ops WHERE op_id = ?", (op_id,)
    ).fetchone()
    if row is None:
        return None
    if row[0] != action or row[1] != args_digest:
        raise Conflict(f"op_id {op_id!r} was already used for a different operation")
    return (json.loads(row[2]),)


def record(
    conn: sqlite3.Connection,
    *,
    op_id: str,
    action: str,
    app_id: str | None,
    install_id: str | None,
    args_digest: str,
    result: Any,
    now: float,
) -> None:
    """Record an applied op inside the caller's transaction."""
    conn.execute(
        "INSERT INTO ops (op_id, action, app_id, install_id, args_digest, result, applied_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (op_id, action, app_id, install_id, args_digest,
         json.dumps(result, separators=(",", ":")), now),
    )


def was_applied(conn: sqlite3.Connection, op_id: str) -> bool:
    """Whether a write with this op_id committed."""
    return conn.execute("SELECT 1 FROM ops WHERE op_id = ?", (op_id,)).fetchone() is not None
