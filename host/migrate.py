"""Explicit schema migrations for a shared store (`stockade store migrate|status`).

A SQLite home creates its tables when a component first opens them. A PostgreSQL store is shared
by several hosts, possibly of different releases during an upgrade, so its schema changes only
here, when the operator says so, and a host whose schema is missing or older refuses to start
(`host.store.schema`). The list below is every component that keeps tables in the host's store,
with the version this release needs.
"""
from __future__ import annotations

from dataclasses import dataclass

from host.apps import consentseq, installs, lineage, published
from host.bridges import persistence
from host.keys import registry, shared
from host.ledger import audit, quota, storelease
from host.server.db import Database
from host.server.migrations import SCHEMA_VERSION as SERVER_SCHEMA_VERSION
from host.server.remote import owned
from host.store import (
    SchemaItem,
    Shared,
    Store,
    StoreTarget,
    ensure_schema,
    open_store,
    schema_versions,
)
from host.store.pg import PgStore, is_url
from host.supervise import identities, status


@dataclass(frozen=True)
class Component:
    name: str
    version: int
    ddl: tuple[SchemaItem, ...]


# Each module that keeps tables in the host's store declares SCHEMA_COMPONENT, SCHEMA_VERSION
# and DDL beside its SQL.
COMPONENTS = tuple(
    Component(m.SCHEMA_COMPONENT, m.SCHEMA_VERSION, m.DDL)
    for m in (installs, lineage, audit, consentseq, quota, registry, persistence, identities,
              status, owned, storelease, published, shared)
)


@dataclass(frozen=True)
class ComponentState:
    name: str
    have: int | None
    need: int

    @property
    def current(self) -> bool:
        return self.have == self.need

    def to_json(self) -> dict[str, object]:
        return {"component": self.name, "have": self.have, "need": self.need,
                "current": self.current}


def store_status(target: StoreTarget) -> list[ComponentState]:
    """Each component's schema version in the store beside the one this release needs (and,
    in a PostgreSQL store, the embedded server's, as component `server`)."""
    store = open_store(target, readonly=True)
    try:
        have = schema_versions(store)
        states = [ComponentState(c.name, have.get(c.name), c.version) for c in COMPONENTS]
        if store.dialect == "postgresql":
            row = (store.conn().execute("SELECT version FROM schema_version WHERE id = 1")
                   .fetchone() if store.has_table("schema_version") else None)
            states.append(ComponentState("server", None if row is None else int(row[0]),
                                         SERVER_SCHEMA_VERSION))
    finally:
        store.close()
    return states


def migrate(target: StoreTarget) -> list[ComponentState]:
    """Create or upgrade every component's tables (each in its own transaction, under the
    store's write lock, so two hosts migrating at once apply each step once)."""
    url = target.url if isinstance(target, Shared) else target
    store: Store = PgStore(str(url), migrating=True) if is_url(url) else open_store(target)
    try:
        for c in COMPONENTS:
            ensure_schema(store, c.name, c.version, c.ddl)
    finally:
        store.close()
    if is_url(url):  # the embedded server's tables share a PostgreSQL store (docs/SCALE.md)
        Database(str(url), migrating=True).close()
    return store_status(target)
