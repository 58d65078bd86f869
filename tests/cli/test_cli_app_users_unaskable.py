"""How many users an app created, where the chat server cannot be asked: `app info` and the
update / consent disclosure say they cannot tell and why (`--json`: null and the reason), as
`app uninstall` does, never "0", never an error; and a setting given empty at install
(`install_package`) is as `app settings APP KEY=` makes it: its default, else unset, and
refused for a required setting."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from apphelp import settings_toml
from clihelp import Run, cli_fixture, home_fixture, stored_settings  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.installs import InstallStore
from host.apps.operations import install_package
from host.apps.packages import package_folder, read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home
from host.server.remote import config as rc_config

SETTINGS = settings_toml("batch", "limit", "verbose", "mode", "crm_url")


def _package(tmp_path: Path, version: str = "1.0.0",
             permissions: tuple[str, ...] = ("livechat.read",)) -> Path:
    folder = write_folder(tmp_path / f"src-{version}",
                          app_files(settings=SETTINGS, version=version, permissions=permissions))
    _, data = package_folder(folder)
    pkg = tmp_path / f"a-{version}.zip"
    pkg.write_bytes(data)
    return pkg


def _install(cli: Run, tmp_path: Path) -> Run:
    return cli("app", "install", str(_package(tmp_path)), "--grant", "livechat.read",
               "--allow-unsigned")


def _unaskable(home: Path) -> None:
    # Connected to a workspace the host will not speak to (plain http to another machine,
    # without --insecure-plain-http): the users the app created cannot be counted.
    rc_config.save(Home(home), "http://chat.example.com", "svc", "token")


def test_app_info_says_it_cannot_tell_how_many_users(cli: Run, tmp_path: Path,
                                                     home: Path) -> None:
    r = _install(cli, tmp_path)
    assert r.exit_code == 0, r.output
    counted = json.loads(cli("app", "info", "agent-sync", "--json").stdout)
    assert counted["app_users"] == 0 and counted.get("app_users_unknown") is None
    _unaskable(home)
    r = cli("app", "info", "agent-sync")
    assert r.exit_code == 0, r.output
    assert "users it created: cannot tell (the chat server cannot be asked" in r.stderr, r.stderr
    assert "plain http" in r.stderr
    r = cli("app", "info", "agent-sync", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["app_users"] is None
    assert "plain http" in doc["app_users_unknown"]


def test_the_update_disclosure_says_it_cannot_tell_how_many_users(cli: Run, tmp_path: Path,
                                                                  home: Path) -> None:
    assert _install(cli, tmp_path).exit_code == 0
    _unaskable(home)
    # A wider update stops at its disclosure (consent needed), which carries the count.
    pkg = _package(tmp_path, "1.1.0", ("livechat.read", "users.create"))
    r = cli("app", "update", "agent-sync", str(pkg), "--allow-unsigned", "--json")
    assert r.exit_code == 1, r.output  # pending (new access): the old version keeps running
    assert r.stderr.count("the chat server cannot be asked") == 1, r.stderr
    assert "Users created by this app so far: cannot tell (the chat server cannot be " \
        "asked" in r.stderr, r.output
    assert "so far: 0" not in r.stderr
    assert "internal error" not in r.stderr.lower(), r.stderr
    doc = json.loads(r.stdout)
    disclosure = doc.get("disclosure", doc)
    assert disclosure["app_users"] is None
    assert "plain http" in disclosure["app_users_unknown"]
    # The consent to it shows the same disclosure, and goes ahead: nothing it does needs a count.
    r = cli("app", "consent", "agent-sync", "--grant", "livechat.read", "--grant", "users.create",
            "--yes")
    assert r.exit_code == 0, r.output
    assert "so far: cannot tell (the chat server cannot be asked" in r.stderr, r.stderr


def _install_with(home: Path, tmp_path: Path, settings: dict[str, object]) -> None:
    # `app install` has no --setting option: the operation is what takes settings at install
    # (the demo, the Python API), so it is what is held here.
    pkg = read_package(_package(tmp_path))
    h = Home(home).ensure()
    install_package(h, pkg, check_signature(pkg, TrustStore(h.trust_dir)),
                    frozenset({"livechat.read"}), policy_revision=None, settings=settings)


def test_install_with_an_empty_optional_setting_leaves_it_as_never_set(tmp_path: Path,
                                                                       home: Path) -> None:
    _install_with(home, tmp_path, {"batch": "", "limit": " ", "verbose": "", "mode": "",
                                   "crm_url": "https://crm"})
    # No default: unset; a default: the default, exactly as if never given.
    assert stored_settings(home) == {"limit": 7, "crm_url": "https://crm"}


def test_install_refuses_an_empty_required_setting(tmp_path: Path, home: Path) -> None:
    with pytest.raises(ValueError, match="crm_url"):
        _install_with(home, tmp_path, {"crm_url": ""})
    with InstallStore(Home(home).host_store) as store:
        assert store.by_app("agent-sync") is None
