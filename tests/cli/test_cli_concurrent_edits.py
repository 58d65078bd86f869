"""Two operators changing one app at once: neither change silently undoes the other.

Each test forces the interleaving: the command under test has read the install, and a second,
real `stockade` process changes it before the first one writes (a wrapper at the write)."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import SECRET_SETTINGS, app_files, write_folder

import host.cli.app_consent_cmd as consent_cmd
from host.apps.installs import InstallStore
from host.apps.packages import package_folder

STOCKADE = str(Path(sys.executable).parent / "stockade")
ASKED = ("livechat.read", "users.create", "http")


def _installed(cli: Run, tmp_path: Path, *grants: str) -> None:
    folder = write_folder(tmp_path / "src", app_files(permissions=ASKED,
                                                      settings=SECRET_SETTINGS))
    _, data = package_folder(folder)
    pkg = tmp_path / "a.zip"
    pkg.write_bytes(data)
    flags = [x for g in grants for x in ("--grant", g)]
    r = cli("app", "install", str(pkg), "--allow-unsigned", *flags)
    assert r.exit_code == 0, r.output


def _other_operator(home: Path, *args: str) -> None:
    r = subprocess.run([STOCKADE, "--home", str(home), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def _info(cli: Run) -> dict[str, Any]:
    return dict(json.loads(cli("app", "info", "agent-sync", "--json").stdout))


def _consents(home: Path) -> int:
    with sqlite3.connect(home / "host.db") as c:
        return int(c.execute("SELECT count(*) FROM consent_records").fetchone()[0])


def test_a_grant_refuses_when_a_revoke_landed_after_it_read_the_grants(
        cli: Run, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(cli, tmp_path, "livechat.read", "http")
    real = consent_cmd.apply_consent

    def revoke_meanwhile(*a: Any, **kw: Any) -> None:
        _other_operator(home, "app", "consent", "agent-sync", "--revoke", "http", "--yes")
        real(*a, **kw)

    monkeypatch.setattr(consent_cmd, "apply_consent", revoke_meanwhile)
    before = _consents(home)
    r = cli("app", "consent", "agent-sync", "--grant", "users.create", "--json")
    assert r.exit_code != 0, r.output
    assert "changed meanwhile" in r.stderr and "run it again" in r.stderr
    assert r.stdout == ""
    monkeypatch.setattr(consent_cmd, "apply_consent", real)
    assert _info(cli)["grants"] == ["livechat.read"]  # the revoke holds
    assert _consents(home) == before + 1  # the revoke's consent; none from the refused run
    again = cli("app", "consent", "agent-sync", "--grant", "users.create")
    assert again.exit_code == 0, again.output
    assert _info(cli)["grants"] == ["livechat.read", "users.create"]


def test_settings_merge_only_the_keys_changed(
        cli: Run, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(cli, tmp_path, "livechat.read")
    real = InstallStore.set_settings

    def other_meanwhile(self: InstallStore, *a: Any, **kw: Any) -> None:
        _other_operator(home, "app", "settings", "agent-sync", "mode=fast")
        real(self, *a, **kw)

    monkeypatch.setattr(InstallStore, "set_settings", other_meanwhile)
    r = cli("app", "settings", "agent-sync", "batch=42")
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(InstallStore, "set_settings", real)
    settings = _info(cli)["settings"]
    assert settings["batch"] == 42 and settings["mode"] == "fast"


def test_settings_of_an_app_uninstalled_meanwhile_fail(
        cli: Run, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(cli, tmp_path, "livechat.read")
    real = InstallStore.set_settings

    def uninstall_meanwhile(self: InstallStore, *a: Any, **kw: Any) -> None:
        _other_operator(home, "app", "uninstall", "agent-sync", "--yes")
        real(self, *a, **kw)

    monkeypatch.setattr(InstallStore, "set_settings", uninstall_meanwhile)
    r = cli("app", "settings", "agent-sync", "batch=42")
    assert r.exit_code != 0, r.output
    assert "updated" not in r.stderr and "no longer installed" in r.stderr
