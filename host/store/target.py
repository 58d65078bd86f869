"""Which store a host uses: the home's SQLite file, or a PostgreSQL database named by URL.

A target is what every store-backed module is constructed with: a `Path` (or a string path)
for SQLite, a `postgresql://` URL for PostgreSQL, or an open `Store` to share. The home's
`host_store` says which (`--store`, `STOCKADE_STORE`, or `store = "…"` in config.toml).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from host.home import Shared
from host.store.base import Store
from host.store.pg import PgStore, is_url, redacted
from host.store.sqlite import SqliteStore

StoreTarget = Path | str | Shared | Store


def open_store(target: StoreTarget, *, readonly: bool = False,
               named_rows: bool = False) -> Store:
    """The store `target` names (an open `Store` is returned as it is). `named_rows`: rows are
    read by column name too (PostgreSQL's always are)."""
    if isinstance(target, Store):
        return target
    if isinstance(target, Shared):
        return PgStore(target.url, readonly=readonly, local_dir=target.local_dir)
    if is_url(target):
        return PgStore(str(target), readonly=readonly)
    return SqliteStore(target, readonly=readonly, named_rows=named_rows)


@contextmanager
def reading(target: StoreTarget) -> Iterator[Any]:
    """A read-only connection to the store `target` names, closed afterwards (the CLI's and
    the console's reports; nothing is created)."""
    store = open_store(target, readonly=True)
    try:
        yield store.conn()
    finally:
        store.close()


def describe(target: StoreTarget) -> str:
    """`target` for messages (a URL without its password)."""
    if isinstance(target, Store):
        return target.where
    return redacted(target) if isinstance(target, str) else str(target)
