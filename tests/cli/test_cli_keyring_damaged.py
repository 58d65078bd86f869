"""A keyring whose files do not read (an edited or cut keyring.json, a key file of the wrong
size) is the operator's to restore: every command says so in one line with how, never as a bug
to report (review finding: `init`, `keys host-list`, `keys host-rotate` said "unexpected
KeyError_ ... please report it", and a cut key file "unexpected ValueError")."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clihelp import run_main

from host.home import Home
from host.keys.keyring import Keyring


def _cut_meta(home: Home) -> None:
    (home.keys_dir / "keyring.json").write_text('{"current": ')


def _cut_key(home: Home) -> None:
    key = home.keys_dir / f"{Keyring.open(home.keys_dir).current}.key"
    key.write_bytes(key.read_bytes()[:7])


@pytest.mark.parametrize("damage", [_cut_meta, _cut_key])
@pytest.mark.parametrize("args", [("init",), ("keys", "host-list"),
                                  ("keys", "host-rotate")])
def test_a_damaged_keyring_is_said_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        damage: Callable[[Home], None], args: tuple[str, ...]) -> None:
    home = Home(tmp_path / "home").ensure()
    Keyring.open(home.keys_dir)
    damage(home)
    code, err = run_main(home.root, capsys, monkeypatch, *args)
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: "), err
    assert "unexpected" not in err and "please report" not in err, err
    assert lines[1].startswith("hint: restore HOME/keys from a backup"), err
