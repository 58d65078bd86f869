"""A home a newer Stockade wrote (the operator went back a release) is refused by every command
in one line that says so and what to do, and `doctor` fails on it (review finding: `app list`,
`app info`, `app disable` printed "unexpected StoreError ... please report it" or "unexpected
RuntimeError", `serve` said "cannot be opened for writing ... check the file system (read-only?
full?)", and `doctor` passed every check, exit 0)."""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from apphelp import install, write_app
from clihelp import run_main

from host.apps.installs import SCHEMA_COMPONENT, SCHEMA_VERSION
from host.cli.serve_cmd import build_server
from host.clock import SystemClock
from host.doctor import state_checks
from host.errors import StartRefused
from host.home import Home
from host.server.migrations import SCHEMA_VERSION as SERVER_SCHEMA_VERSION

SRC = '''
from stockade import App

class TestApp(App):
    pass
'''


@pytest.fixture(name="home")
def home_fixture(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "later", ["livechat.read"], [], SRC))
    build_server(home, SystemClock()).close()
    return home


def _sql(home: Home, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(home.host_db)) as c:
        c.execute(statement)
        c.commit()


def _newer_installs(home: Home) -> None:
    _sql(home, f"UPDATE schema_meta SET version = {SCHEMA_VERSION + 1} "
               f"WHERE component = '{SCHEMA_COMPONENT}'")


def _newer_server(home: Home) -> None:
    _sql(home, f"UPDATE schema_version SET version = {SERVER_SCHEMA_VERSION + 1}")


@pytest.mark.parametrize(("make_newer", "args"), [
    (_newer_installs, ("app", "list")),
    (_newer_installs, ("app", "disable", "later")),
    (_newer_server, ("app", "info", "later")),
])
def test_a_command_on_a_newer_home_says_so_in_one_line(
        home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        make_newer: object, args: tuple[str, ...]) -> None:
    assert callable(make_newer)
    make_newer(home)
    code, err = run_main(home.root, capsys, monkeypatch, *args)
    assert code == 1, err
    assert "unexpected" not in err and "please report" not in err, err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and "newer" in lines[0], err
    assert lines[1].startswith("hint: ") and "newer Stockade release" in lines[1], err


def test_serve_on_a_newer_home_names_the_release_not_the_file_system(home: Home) -> None:
    _newer_server(home)
    with pytest.raises(StartRefused) as refused:
        build_server(home, SystemClock())  # `serve --mint-token`'s and the host's open
    assert "newer" in refused.value.message
    assert "newer Stockade release" in refused.value.hint
    assert "read-only" not in refused.value.hint  # before: "check the file system ..."


@pytest.mark.parametrize("make_newer", [_newer_installs, _newer_server])
def test_doctor_fails_a_newer_home(home: Home, make_newer: object) -> None:
    def schema() -> list[tuple[bool, bool, str]]:
        return [(c.ok, c.required, c.detail) for c in state_checks(home)
                if c.name == "store schema"]

    assert [ok for ok, _, _ in schema()] == [True]
    assert callable(make_newer)
    make_newer(home)
    [(ok, required, detail)] = schema()  # before: no such check, and doctor passed
    assert not ok and required and "newer than this release" in detail
