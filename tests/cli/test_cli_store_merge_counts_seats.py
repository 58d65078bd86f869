"""The seat counter `store migrate` leaves in host.db is the count of the users it moved.

`app_seats.n` (server schema version 4) must equal the number of active app-created users: a
creation's seat check reads that one row, so a count below the truth lets apps take seats past
the workspace's ceiling. The merge's own triggers counted the users as it copied them, then it
overwrote that count with the row stored in server.db, whatever it said (an edited file, a
counter whose triggers were dropped there).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures
from test_cli_store_merge import _old_home

ACTIVE_APP_USERS = "SELECT count(*) FROM users WHERE created_by_app IS NOT NULL AND active = 1"


def test_the_seat_counter_is_the_count_of_the_users_moved_not_the_files_row(
        cli: Run, home: Path) -> None:
    h = _old_home(home)  # two users created by an app
    with sqlite3.connect(h.root / "server.db") as c:
        assert c.execute(ACTIVE_APP_USERS).fetchone()[0] == 2
        c.execute("UPDATE app_seats SET n = -5")  # seven seats past any ceiling
    assert cli("store", "migrate").exit_code == 0
    with sqlite3.connect(h.host_db) as c:
        assert c.execute("SELECT n FROM app_seats").fetchone()[0] == 2
        assert c.execute(ACTIVE_APP_USERS).fetchone()[0] == 2
