"""An install row's columns (app id, version, grants; host.db, so whoever can write the store
chose them) reach the operator's screen inert from every command that names the app
(DESIGN rule 12), not only from `app list` and `app info`.

Before: `app disable`, `app logs`, `app uninstall`, `can-i` and the consent screens printed
`rec.app_id` / `rec.grants` in f-strings straight to the console (markup off, but ESC, OSC,
BEL and bidi characters as they were): a forged row's app id cleared the screen and retitled
the terminal when the operator disabled the app `app list` showed as tampered.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.packages import package_folder

EVIL = "\x1b[2J\x1b]0;pwned\x07\nFORGED LINE: consented\u202e"
RAW = ("\x1b", "\x07", "\u202e")


def _forged(cli: Run, tmp_path: Path, home: Path) -> str:
    _, data = package_folder(write_folder(tmp_path / "src", app_files()))
    pkg = tmp_path / "a.zip"
    pkg.write_bytes(data)
    r = cli("app", "install", str(pkg), "--grant", "livechat.read", "--allow-unsigned")
    assert r.exit_code == 0, r.output
    c = sqlite3.connect(home / "host.db", isolation_level=None)
    iid = str(c.execute("SELECT install_id FROM install_installs").fetchone()[0])
    c.execute("UPDATE install_installs SET app_id = ?, version = ?, grants = ?",
              ("x" + EVIL, "1" + EVIL, json.dumps(["g" + EVIL])))
    c.close()
    return iid


@pytest.mark.parametrize("args", [
    ("app", "disable"), ("app", "logs"), ("app", "uninstall", "--yes"),
    ("can-i", "--list"), ("can-i", "messages.send"), ("app", "tokens", "--revoke", "all"),
])
def test_a_forged_install_rows_text_is_inert(cli: Run, tmp_path: Path, home: Path,
                                             args: tuple[str, ...]) -> None:
    iid = _forged(cli, tmp_path, home)
    r = cli(*args[:2], iid, *args[2:]) if args[0] == "app" else cli(args[0], iid, *args[1:])
    assert "x\\x1b[2J" in r.output or "g\\x1b[2J" in r.output, r.output
    for ch in RAW:
        assert ch not in r.output, repr(r.output)
    assert not any(ln.startswith("FORGED") for ln in r.output.splitlines()), r.output


def test_disable_json_keeps_the_rows_exact(cli: Run, tmp_path: Path, home: Path) -> None:
    iid = _forged(cli, tmp_path, home)
    r = cli("app", "disable", iid, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["app_id"] == "x" + EVIL
