"""Per-component schema versions, the same in both backends.

Several modules (installs, quota, audit, persistence, ...) share one store, so each keeps its own
version in `schema_meta(component, version)`. A store written by a newer Stockade is refused:
old code over a newer layout could skip a column that enforces a limit.

The SQLite store creates and upgrades a component's tables when the component opens (a home is
one machine's, and its first start is its setup). A PostgreSQL store is shared by hosts that may
run different releases during an upgrade, so nothing there changes silently: a host whose
component is missing or older refuses to start, and `stockade store migrate` applies the change
once, explicitly (`PgStore.migrating`).
"""
from __future__ import annotations

from collections.abc import Sequence

from host.store.base import SchemaItem, SchemaTooNew, Step, Store, StoreError

_META_DDL = ("CREATE TABLE IF NOT EXISTS schema_meta("
             "component TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID")


def ensure_schema(store: Store, component: str, version: int,
                  ddl: Sequence[SchemaItem]) -> None:
    """Make `component`'s tables current (see the module docstring), or raise `StoreError`."""
    explicit = store.dialect == "postgresql" and not getattr(store, "migrating", False)
    if explicit or store.dialect == "sqlite":
        # A current component needs nothing: read without the write lock, so opening a store
        # another process is writing (or holds, past the busy wait) does not wait on it. Every
        # store-backed part opens its components this way, each CLI command and console page:
        # each took the write lock to find nothing to do.
        have = _version(store, component)
        if have == version:
            return
    if explicit:
        if have is not None and have > version:
            raise SchemaTooNew(
                f"{store.where}: {component} schema version {have} is newer than this "
                f"Stockade understands ({version}); upgrade Stockade")
        if have is None or have < version:
            raise StoreError(
                f"{store.where}: the {component} schema is "
                f"{'missing' if have is None else f'at version {have}'}, this Stockade needs "
                f"version {version}; run `stockade store migrate` (once, from one host)")
    with store.transaction() as c:
        c.execute(_META_DDL)
        row = c.execute(
            "SELECT version FROM schema_meta WHERE component=?", (component,)).fetchone()
        if row is not None and _checked(store, component, row[0]) > version:
            raise SchemaTooNew(
                f"{store.where}: {component} schema version {row[0]} is newer than this "
                f"Stockade understands ({version}); upgrade Stockade")
        have = 0 if row is None else _checked(store, component, row[0])
        if row is not None and have < version:  # a layout someone may be serving
            store.before_upgrade(f"{component} {have} to {version}")
        for item in ddl:
            if isinstance(item, Step) and item.version <= have:
                continue  # applied when the store reached that version
            for stmt in store.render(item):
                c.execute(stmt)
        c.execute(
            "INSERT INTO schema_meta(component, version) VALUES(?, ?) "
            "ON CONFLICT(component) DO UPDATE SET version=excluded.version",
            (component, version))


def _version(store: Store, component: str) -> int | None:
    if not store.has_table("schema_meta"):
        return None
    row = store.conn().execute(
        "SELECT version FROM schema_meta WHERE component=?", (component,)).fetchone()
    return None if row is None else _checked(store, component, row[0])


def schema_versions(store: Store) -> dict[str, int]:
    """Every component's schema version in this store (`store status`, `doctor`)."""
    if not store.has_table("schema_meta"):
        return {}
    rows = store.conn().execute("SELECT component, version FROM schema_meta").fetchall()
    return {str(r[0]): _checked(store, str(r[0]), r[1]) for r in rows}


def _checked(store: Store, component: str, value: object) -> int:
    """A version read from `schema_meta`, or `StoreError` naming the row: SQLite keeps any value
    in an INTEGER column, and an edited row (text, a fraction, 0 or below) would otherwise be a
    ValueError reported as a host bug, or a version below 1 would run every step again."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise StoreError(f"{store.where}: the {component!r} row of schema_meta holds "
                     f"{str(value)[:40]!r}, not a schema version; restore the store from a "
                     "backup")
