"""A deleted row's bytes do not stay in the database file, whatever the SQLite build's default.

Debian builds SQLite with SECURE_DELETE on; many builds (python.org's, Homebrew's) leave it
off, and then a rotated secret setting or a revoked token's hash stays readable in a free page
of the file (a backup, a copied home). The test stands in for such a build: every connection
starts with the pragma off, as it would there, and the stores must turn it on themselves."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from host.server.db import Database
from host.store.sqlite import SqliteStore

SECRET = b"sk-live-5f3c9a7e1d2b4c6a8e0f"


@pytest.fixture(autouse=True)
def _build_without_secure_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable[..., sqlite3.Connection] = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        c = real(*args, **kwargs)
        c.execute("PRAGMA secure_delete=OFF")
        return c

    monkeypatch.setattr(sqlite3, "connect", connect)


def _write_then_delete(c: sqlite3.Connection) -> None:
    c.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB)")
    c.execute("INSERT INTO t VALUES ('keep', ?)", (b"x" * 200,))
    c.execute("INSERT INTO t VALUES ('secret', ?)", (SECRET,))
    c.execute("DELETE FROM t WHERE k = 'secret'")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_the_host_store_zeroes_what_it_deletes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "host.db")
    _write_then_delete(store.conn())
    assert store.conn().execute("PRAGMA secure_delete").fetchone()[0] == 1
    store.close_all()
    assert SECRET not in (tmp_path / "host.db").read_bytes()


def test_the_embedded_servers_store_zeroes_what_it_deletes(tmp_path: Path) -> None:
    db = Database(tmp_path / "server.db")
    _write_then_delete(db.conn())
    assert db.conn().execute("PRAGMA secure_delete").fetchone()[0] == 1
    db.close_all()
    assert SECRET not in (tmp_path / "server.db").read_bytes()
