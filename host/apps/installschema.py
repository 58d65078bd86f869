"""The install store's tables (`host.apps.installs` reads and writes them): installs, their
pending updates, the signed consent records that bind their grants, and the lifecycle hooks
written in the same transaction as each change. Every table is prefixed `install_` or
`consent_`, in HOME/host.db or the shared store."""
from __future__ import annotations

from host.store import SchemaItem, Step

SCHEMA_COMPONENT = "installs"
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS install_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL DEFAULT 1,
    changes INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO install_meta (id, epoch, changes) VALUES (1, 1, 0);
CREATE TABLE IF NOT EXISTS install_installs (
    install_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL UNIQUE,
    version TEXT NOT NULL,
    package_hash TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    package_path TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    grants TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    secret_keys TEXT NOT NULL DEFAULT '[]',
    app_user_id TEXT,
    publisher TEXT NOT NULL DEFAULT '{}',
    consent_id TEXT NOT NULL,
    installed_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS install_pending (
    install_id TEXT PRIMARY KEY REFERENCES install_installs(install_id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    package_hash TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    package_path TEXT NOT NULL,
    publisher TEXT NOT NULL DEFAULT '{}',
    diff TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_records (
    consent_id TEXT PRIMARY KEY,
    install_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    kid TEXT NOT NULL,
    signature BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_records_install ON consent_records (install_id);
CREATE TABLE IF NOT EXISTS install_hooks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    install_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    hook TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    done_at REAL
);
"""
DDL: tuple[SchemaItem, ...] = (
    *(s.strip() for s in _SCHEMA.split(";") if s.strip()),
    # Version 2: why the host stopped the app for crash-looping (`host.supervise.restarts`),
    # NULL while it is not; kept here so the stop outlives a host restart until the operator's
    # `app enable` clears it. Not a security column: a store writer who clears it only lets an
    # app restart, as any app did before the limit existed.
    Step(2, "ALTER TABLE install_installs ADD COLUMN crash_stop TEXT"),
)
