"""Of two installs of one app racing, the second says the app was installed meanwhile (exit 2,
as when it was installed before), and installs nothing (review finding: it said "app id 'g1'
was installed before from a package no key vouched for ... another app posing as the installed
one", exit 1, with the hint to transfer the id to it). The race is forced: the other operator's
install lands between this command's look and its install."""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

import host.cli.app_cmd as app_cmd
from host.apps.installs import InstallStore
from host.home import Home

SRC = '''
from stockade import App

class TestApp(App):
    pass
'''


def test_an_install_that_lost_the_race_says_so(cli: Run, home: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_app(tmp_path / "apps", "twice", [], [], SRC)
    real = app_cmd.install_package

    def the_other_operator_first(h: Home, *args: object, **kw: object) -> object:
        install(h, folder)  # lands after this command's "already installed?" look
        return real(h, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(app_cmd, "install_package", the_other_operator_first)
    r = cli("app", "install", str(folder), "--allow-unsigned")
    assert r.exit_code == 2, r.output
    assert "installed meanwhile" in r.output and "posing" not in r.output, r.output
    with InstallStore(Home(home).host_store) as store:
        assert len(store.list()) == 1
