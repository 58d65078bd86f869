"""Store tests run on both backends: the home's SQLite file and a real PostgreSQL server."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from host.clock import Clock
from host.ledger.ledger import Ledger
from host.ledger.quota import QuotaStore
from host.migrate import migrate
from host.store import StoreTarget


@dataclass(frozen=True)
class Db:
    """One store for a test: `target` is a path (SQLite) or a URL (PostgreSQL, migrated)."""

    target: StoreTarget
    home: Path  # this host's own files (the audit anchor and its key)

    # These tests set the time by hand on either backend (`store_clock=False`); a PostgreSQL
    # store's own clock is tested in test_pg_quota_clock.py.
    def ledger(self, clock: Clock) -> Ledger:
        return Ledger(self.target, clock, anchor_path=self.home / "audit.anchor",
                      key_path=self.home / "keys" / "audit-anchor.key", store_clock=False)

    def quotas(self, clock: Clock) -> QuotaStore:
        return QuotaStore(self.target, clock, store_clock=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        return Db(tmp_path / "host.db", tmp_path)
    url = request.getfixturevalue("pg_url")
    migrate(url)
    return Db(url, tmp_path)
