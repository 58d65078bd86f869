"""A `server.db` beside a host.db that holds the embedded server's data is never served.

`Home.server_db` is `server.db` whenever that file exists. Once `stockade store migrate` (or a
home made by this release) put the server's data in host.db, a `server.db` that appears later
(an older release run once on the home makes an empty one; a rollback renames the kept file
back) made every command that opens the server open it instead: `serve` served from it, and
host.db's users, rooms and tokens were gone from the workspace, its seats counted from the wrong
file. `store migrate` refused that case; `serve`, `doctor` and the rest did not.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures
from test_cli_store_merge import _old_home
from test_cli_store_merge_keeps_host_data import _merged_and_used

from host.clock import SystemClock
from host.errors import StartRefused
from host.home import Home
from host.server.db import Database
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM
from host.server.stray import COPYING


def _stray(h: Home) -> None:
    """What an older release run once on the home leaves: a server.db of its own, empty."""
    Database(h.root / "server.db").close()


def test_serve_refuses_a_stray_server_db_in_one_line(cli: Run, home: Path) -> None:
    h, _, users = _merged_and_used(cli, home)
    _stray(h)
    r = cli("serve", "--mint-token", "svc", "--json")
    assert r.exit_code == 1, r.output  # as every StartRefused: exit 1, no traceback
    assert "Traceback" not in r.output and r.stdout == ""
    assert "server.db" in r.stderr and "host.db" in r.stderr and "hint:" in r.stderr
    # Nothing was minted anywhere: not in the stray file, and host.db's users are as they were.
    with sqlite3.connect(h.root / "server.db") as c:
        assert c.execute("SELECT count(*) FROM users WHERE username = 'svc'").fetchone()[0] == 0
    with sqlite3.connect(h.host_db) as c:
        assert {str(r[0]) for r in c.execute("SELECT username FROM users")} == users


def test_the_kept_file_renamed_back_is_not_served(cli: Run, home: Path) -> None:
    h, kept, _ = _merged_and_used(cli, home)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{h.root / kept}{suffix}").exists():
            Path(f"{h.root / kept}{suffix}").rename(h.root / f"server.db{suffix}")
    with pytest.raises(StartRefused) as caught:
        EmbeddedServer(h.server_store, SystemClock())
    assert "server.db" in caught.value.message and "host.db" in caught.value.message
    assert "server.db" in caught.value.hint


def test_doctor_reports_a_stray_server_db_as_a_failed_check(cli: Run, home: Path) -> None:
    h, _, _ = _merged_and_used(cli, home)
    _stray(h)
    r = cli("doctor", "--json")
    checks = json.loads(r.stdout)["checks"]
    found = [c for c in checks if c["name"] == "stray server.db"]
    assert found and found[0]["required"] and not found[0]["ok"], checks
    assert "host.db" in found[0]["detail"]
    assert r.exit_code != 0


def test_an_older_homes_server_db_is_still_served(home: Path) -> None:
    """host.db holds no server data: server.db is the home's, served as before."""
    h = _old_home(home)
    server = EmbeddedServer(h.server_store, SystemClock())
    assert server.users_get_by_username(SYSTEM, "old-0") is not None
    server.close()


def test_a_merge_stopped_before_its_rename_still_serves_server_db(home: Path) -> None:
    """host.db holds the copy an unfinished merge of this very file committed (its marker names
    the file's inode): server.db is still the home's data until the merge is run again."""
    h = _old_home(home)
    server = EmbeddedServer(h.host_db, SystemClock())  # a copy, as a stopped merge leaves it
    server.users_create(SYSTEM, "copied-user", "C", "user")
    server.close()
    with sqlite3.connect(h.host_db) as c:
        c.execute(f'CREATE TABLE "{COPYING}" (ino INTEGER NOT NULL)')
        c.execute(f'INSERT INTO "{COPYING}" VALUES (?)', (os.stat(h.root / "server.db").st_ino,))
    server = EmbeddedServer(h.server_store, SystemClock())
    assert server.users_get_by_username(SYSTEM, "old-0") is not None
    server.close()
    with sqlite3.connect(h.host_db) as c:  # a marker naming another file vouches for nothing
        c.execute(f'UPDATE "{COPYING}" SET ino = ino + 1')
    with pytest.raises(StartRefused):
        EmbeddedServer(h.server_store, SystemClock())
