"""A home another local user can change is refused by every command that writes it, and `doctor`
fails it (review finding: `stockade --home /tmp/NAME init` on a folder another user had made
first succeeded; that user, its owner, renamed the root-owned `policies/` and `keys/` away and
put folders of their own in their place, whatever the 0700 mode, and `doctor` said "home
permissions ok")."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from clihelp import run_main

from host.doctor import state_checks
from host.home import Home

# Another local user's uid: `nobody`, as a hostile local user.
OTHER_UID = 65534


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")


def _refused(err: str, folder: Path) -> None:
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: the home ") and "is not this user's alone" in lines[0]
    assert f"{folder}" in lines[0] and f"uid {OTHER_UID}" in lines[0], err
    assert lines[1].startswith("hint: whoever owns a folder"), err


def test_init_in_a_folder_another_user_made_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lure = tmp_path / "stockade-home"
    lure.mkdir()
    os.chown(lure, OTHER_UID, OTHER_UID)
    code, err = run_main(lure, capsys, monkeypatch, "init")
    assert code == 1, err  # before: 0, "initialized", keys and policy written into it
    _refused(err, lure)
    assert list(lure.iterdir()) == []  # nothing made in it


def test_a_home_below_another_users_folder_is_refused_before_it_is_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = tmp_path / "shared"
    theirs.mkdir()
    os.chown(theirs, OTHER_UID, OTHER_UID)
    code, err = run_main(theirs / "home", capsys, monkeypatch, "init")
    assert code == 1, err
    _refused(err, theirs)
    assert not (theirs / "home").exists()


def test_a_home_given_away_is_refused_by_a_command_and_failed_by_doctor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    [perm] = [c for c in state_checks(home) if c.name == "home permissions"]
    assert perm.ok
    os.chown(home.policies_dir, OTHER_UID, OTHER_UID)
    code, err = run_main(home.root, capsys, monkeypatch, "keys", "host-rotate")
    assert code == 1, err
    _refused(err, home.policies_dir)
    [perm] = [c for c in state_checks(home) if c.name == "home permissions"]
    assert not perm.ok and f"uid {OTHER_UID}" in perm.detail  # before: ok, "mode 700"
