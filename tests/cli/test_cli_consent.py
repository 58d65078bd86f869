"""`app consent` changes grants additively, shows the difference, and asks before removing."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.packages import package_folder

ASKED = ("livechat.read", "users.create", "http")


def _installed(cli: Run, tmp_path: Path, *grants: str) -> None:
    folder = write_folder(tmp_path / "src", app_files(permissions=ASKED))
    _, data = package_folder(folder)
    pkg = tmp_path / "a.zip"
    pkg.write_bytes(data)
    flags = [x for g in grants for x in ("--grant", g)]
    r = cli("app", "install", str(pkg), "--allow-unsigned", *flags)
    assert r.exit_code == 0, r.output


def _grants(cli: Run) -> list[str]:
    return list(json.loads(cli("app", "info", "agent-sync", "--json").stdout)["grants"])


def test_grant_adds_to_what_the_app_holds(cli: Run, tmp_path: Path) -> None:
    _installed(cli, tmp_path, "livechat.read")
    r = cli("app", "consent", "agent-sync", "--grant", "http")
    assert r.exit_code == 0, r.output
    assert "+ http" in r.stderr and "grants before: livechat.read" in r.stderr
    assert _grants(cli) == ["http", "livechat.read"]


def test_revoke_needs_yes_without_a_terminal(cli: Run, tmp_path: Path) -> None:
    _installed(cli, tmp_path, "livechat.read", "http")
    r = cli("app", "consent", "agent-sync", "--revoke", "http")
    assert r.exit_code == 3 and "- http" in r.stderr and "--yes" in r.stderr
    assert _grants(cli) == ["http", "livechat.read"]
    ok = cli("app", "consent", "agent-sync", "--revoke", "http", "--yes", "--json")
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["before"] == ["http", "livechat.read"] and doc["after"] == ["livechat.read"]
    assert _grants(cli) == ["livechat.read"]


def test_dry_run_changes_nothing(cli: Run, tmp_path: Path) -> None:
    _installed(cli, tmp_path, "livechat.read")
    r = cli("app", "consent", "agent-sync", "--grant", "users.create", "--revoke",
            "livechat.read", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc == {"status": "dry-run", "before": ["livechat.read"], "after": ["users.create"],
                   "added": ["users.create"], "removed": ["livechat.read"]}
    assert _grants(cli) == ["livechat.read"]


def test_unknown_permission_is_a_usage_error(cli: Run, tmp_path: Path) -> None:
    _installed(cli, tmp_path, "livechat.read")
    r = cli("app", "consent", "agent-sync", "--grant", "messages.send")
    assert r.exit_code == 2 and "does not ask for" in r.stderr
    assert _grants(cli) == ["livechat.read"]


def test_not_found_is_a_usage_error(cli: Run) -> None:
    cli("init")
    r = cli("app", "consent", "nope", "--grant", "http")
    assert r.exit_code == 2 and "no installed app 'nope'" in r.stderr


def test_install_that_stops_for_consent_prints_the_disclosure_as_json(cli: Run,
                                                                      tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files(permissions=ASKED))
    r = cli("app", "install", str(folder), "--allow-unsigned", "--json")
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "consent-required" and doc["installed"] is False
    assert {p["name"] for p in doc["disclosure"]["permissions"]} == set(ASKED)
    unsigned = cli("app", "install", str(folder), "--json")
    assert unsigned.exit_code == 3
    assert json.loads(unsigned.stdout)["status"] == "consent-required"


def test_install_dry_run_installs_nothing(cli: Run, tmp_path: Path, home: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files(permissions=ASKED))
    r = cli("app", "install", str(folder), "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "dry-run" and doc["installed"] is False
    assert not (home / "host.db").exists()
