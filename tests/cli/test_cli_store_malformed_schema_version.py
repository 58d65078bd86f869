"""A `schema_meta` row holding something other than a schema version is refused in one line
naming the row, by `store migrate` and `store status` alike.

SQLite keeps any value in an INTEGER column: an edited host.db whose version row held text was
"unexpected ValueError: invalid literal for int() ... please report it", as if a host bug, and
one holding 0 or below had every step of the component applied again ("duplicate column name").
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures


@pytest.mark.parametrize("value", ["abc", -1, 2.5])
@pytest.mark.parametrize("command", [("store", "migrate"), ("store", "status")])
def test_a_malformed_schema_version_is_refused_naming_the_row(
        cli: Run, home: Path, value: object, command: tuple[str, ...]) -> None:
    assert cli("init").exit_code == 0
    assert cli("store", "migrate").exit_code == 0
    with sqlite3.connect(home / "host.db") as c:
        c.execute("UPDATE schema_meta SET version = ? WHERE component = 'quota'", (value,))
    r = cli(*command)
    assert r.exit_code == 2, r.output
    assert "'quota' row of schema_meta" in r.stderr and "unexpected" not in r.output
