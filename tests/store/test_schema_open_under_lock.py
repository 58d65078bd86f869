"""Opening a store whose components are current takes no write lock (`ensure_schema`).

Every store-backed part checks its component's schema as it opens: each CLI command, each
console page, each host start. On SQLite that check was a write transaction (`BEGIN IMMEDIATE`)
that found nothing to do, so while another process held the write lock (a long command, a
stopped host) every open waited the busy timeout (10 s) and then failed "database is locked",
reads included, which WAL would have served at once."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from host.apps.installs import InstallStore
from host.clock import SystemClock
from host.home import Home
from host.ledger.ledger import Ledger


def test_a_current_store_opens_and_reads_while_another_process_holds_its_write_lock(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    InstallStore(home.host_store).close()  # the components made once, as a first start does
    Ledger(home.host_store, SystemClock()).close()
    holder = sqlite3.connect(home.host_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write, under way
    try:
        t0 = time.monotonic()
        with InstallStore(home.host_store) as installs:
            assert installs.list() == []
        ledger = Ledger(home.host_store, SystemClock())
        try:
            assert ledger.audit.verify().ok
        finally:
            ledger.close()
        # Before: the first open waited the 10 s busy timeout and raised "database is locked".
        assert time.monotonic() - t0 < 2.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
