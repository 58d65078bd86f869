"""The host's store: the SQLite access that `host.db` and the embedded server's `server.db` share.

What it holds: a connection per thread and per process, tuned for WAL (`sqlite.Store`), the one
write-transaction helper both stores use (`sqlite.immediate`), per-component schema versions
(`ensure_schema`), and `StoreError`. The names re-exported here are the narrow interface the
rest of the host programs against; a PostgreSQL store would stand beside `sqlite.py` and
export the same names (see docs/ARCHITECTURE.md, "The store").

May import: the standard library only. Imported by: every room above it (`ledger`, `bridges`,
`apps`, `server`, `gate`).
"""
from __future__ import annotations

from host.store.sqlite import (
    Store,
    StoreError,
    ensure_schema,
    immediate,
    integrity_problem,
    opening_stores,
    refuse_damaged_stores,
    table_exists,
)

__all__ = ["Store", "StoreError", "ensure_schema", "immediate", "integrity_problem",
           "opening_stores", "refuse_damaged_stores", "table_exists"]
