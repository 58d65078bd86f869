"""Which store a host uses: the home's SQLite file, or a PostgreSQL database named by URL.

A target is what every store-backed module is constructed with: a `Path` (or a string path)
for SQLite, a `postgresql://` URL for PostgreSQL, or an open `Store` to share. The home's
`host_store` says which (`--store`, `STOCKADE_STORE`, or `store = "…"` in config.toml).
"""
from __future__ import annotations

from pathlib import Path

from host.store.base import Store
from host.store.pg import PgStore, is_url
from host.store.sqlite import SqliteStore

StoreTarget = Path | str | Store


def open_store(target: StoreTarget, *, readonly: bool = False) -> Store:
    """The store `target` names (an open `Store` is returned as it is)."""
    if isinstance(target, Store):
        return target
    if is_url(target):
        return PgStore(str(target), readonly=readonly)
    return SqliteStore(target, readonly=readonly)


def describe(target: StoreTarget) -> str:
    """`target` for messages (a URL without its password)."""
    return open_store(target).where if not isinstance(target, Path) else str(target)
