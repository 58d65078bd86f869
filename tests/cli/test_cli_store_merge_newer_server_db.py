"""A server.db `stockade store migrate` cannot read is refused in one line, and left as it was.

A server.db from a newer release (a home that ran one, then an older release again) reached
`Database`'s own check, a RuntimeError: "unexpected RuntimeError ... please report it", as if
it were a bug in the host. A version row that is not a number was a ValueError the same way.
And a server.db refused because host.db holds server data of its own had already been upgraded
to this release's schema by then, out of reach of the older release that made it.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures
from test_cli_store_merge import _old_home
from test_cli_store_merge_keeps_host_data import _merged_and_used

from host.server.migrations import SCHEMA_VERSION, SERVER_VERSION_DDL, migration_statements


def _server_version(path: Path) -> object:
    with sqlite3.connect(path) as c:
        return c.execute("SELECT version FROM schema_version").fetchone()[0]


@pytest.mark.parametrize(("version", "said"), [(SCHEMA_VERSION + 1, "newer Stockade"),
                                               ("six", "not a number")])
def test_a_server_db_this_release_cannot_read_is_refused_in_one_line(
        cli: Run, home: Path, version: object, said: str) -> None:
    h = _old_home(home)
    with sqlite3.connect(h.root / "server.db") as c:
        c.execute("UPDATE schema_version SET version = ?", (version,))
    r = cli("store", "migrate")
    assert r.exit_code == 2 and said in r.stderr, r.output
    assert "unexpected" not in r.output and "report" not in r.output
    assert _server_version(h.root / "server.db") == version
    with sqlite3.connect(h.host_db) as c:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'users'"
                         ).fetchone()[0] == 0


def test_a_server_db_refused_for_host_dbs_data_keeps_its_own_schema(
        cli: Run, home: Path) -> None:
    h, _, _ = _merged_and_used(cli, home)
    older = h.root / "server.db"
    with sqlite3.connect(older, isolation_level=None) as c:  # as the release before made it
        c.execute(SERVER_VERSION_DDL)
        for version in range(SCHEMA_VERSION - 1):
            for stmt in migration_statements(version, "sqlite"):
                c.execute(stmt)
        c.execute("INSERT INTO schema_version VALUES (1, ?)", (SCHEMA_VERSION - 1,))
    r = cli("store", "migrate")
    assert r.exit_code == 1 and "host.db already holds" in r.stderr, r.output
    assert _server_version(older) == SCHEMA_VERSION - 1
