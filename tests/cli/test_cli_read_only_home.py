"""A home on a read-only file system (as the kernel remounts one after I/O errors) is named as
such by every command, in one line with what to do, as the README promises (review finding:
`app list`, `app disable`, `app uninstall`, `can-i` printed "unexpected OperationalError: unable
to open database file ... please report it", `keys host-list` "unexpected OSError", `audit
verify` "check the file's permissions", and `doctor`'s disk check read "ok, N MiB free")."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from apphelp import install, write_app
from clihelp import run_main

from host.doctor import disk_checks
from host.home import Home

SRC = '''
from stockade import App

class TestApp(App):
    pass
'''


@pytest.fixture(name="ro_home", scope="module")
def ro_home_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A home with an app installed, seen through a read-only bind mount."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    tmp = tmp_path_factory.mktemp("ro")
    home = Home(tmp / "home").ensure()
    install(home, write_app(tmp / "apps", "stuck", ["livechat.read"], [], SRC))
    view = tmp / "view"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(home.root), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield Home(view)
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


@pytest.mark.parametrize("args", [("app", "list"), ("app", "disable", "stuck"),
                                  ("keys", "host-list"), ("can-i", "stuck", "users.create")])
def test_a_command_on_a_read_only_home_names_it(ro_home: Home,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch,
                                                args: tuple[str, ...]) -> None:
    code, err = run_main(ro_home.root, capsys, monkeypatch, *args)
    assert code == 1, err
    assert "unexpected" not in err and "please report" not in err, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"error: the home {ro_home.root} is on a read-only file system")
    assert lines[1].startswith("hint: remount"), err


def test_audit_verify_on_a_read_only_home_names_it(ro_home: Home,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = run_main(ro_home.root, capsys, monkeypatch, "audit", "verify")
    assert code == 1, err
    assert "read-only" in err and "permissions" not in err, err  # before: "check ... permissions"


def test_doctor_fails_the_disk_of_a_read_only_home(ro_home: Home) -> None:
    [disk] = disk_checks(ro_home)
    assert not disk.ok and disk.required and "read-only" in disk.detail  # before: ok
