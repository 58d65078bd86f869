"""The host's store: SQLite in one home (the default), or PostgreSQL shared by several hosts.

What it holds: the backend interface (`base.Store`, `Conn`), the SQLite backend (`sqlite.py`:
a connection per thread and per process, tuned for WAL) that `host.db` and the embedded
server's `server.db` use, the PostgreSQL backend (`pg.py`) with the SQL it translates
(`dialect.py`), per-component schema versions (`schema.py`), and `open_store`, which picks the
backend from a target (`target.py`). The names re-exported here are the narrow interface the
rest of the host programs against (docs/ARCHITECTURE.md, "The store"; docs/SCALE.md).

May import: the standard library (and psycopg, lazily). Imported by: every room above it
(`ledger`, `bridges`, `apps`, `server`, `gate`).
"""
from __future__ import annotations

from host.home import Shared
from host.store.base import (
    DB_ERRORS,
    INTEGRITY_ERRORS,
    STORE_FAILURES,
    AppendOnly,
    Conn,
    SchemaInUse,
    SchemaItem,
    SchemaTooNew,
    SetOnce,
    Step,
    Store,
    StoreError,
    UnstorableText,
)
from host.store.schema import ensure_schema, schema_versions
from host.store.sqlite import (
    SqliteStore,
    immediate,
    integrity_problem,
    opening_stores,
    refuse_damaged_stores,
    table_exists,
)
from host.store.target import StoreTarget, describe, open_store, reading

__all__ = [
    "DB_ERRORS",
    "INTEGRITY_ERRORS",
    "STORE_FAILURES",
    "AppendOnly",
    "Conn",
    "SchemaInUse",
    "SchemaItem",
    "SchemaTooNew",
    "SetOnce",
    "Shared",
    "SqliteStore",
    "Step",
    "Store",
    "StoreError",
    "StoreTarget",
    "UnstorableText",
    "describe",
    "ensure_schema",
    "immediate",
    "integrity_problem",
    "open_store",
    "opening_stores",
    "reading",
    "refuse_damaged_stores",
    "schema_versions",
    "table_exists",
]
