"""`app settings`: an optional setting emptied (`KEY=`) is unset, as an optional setting no one
set is (absent from `ctx.settings`), audited like any change; an integer past the bound says
the bound; `app uninstall` says when it cannot tell how many users the app created, and then
never deactivates them by default."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from apphelp import settings_toml
from clihelp import (  # noqa: F401  (the fixtures)
    Run,
    cli_fixture,
    home_fixture,
    install_with_settings,
    stored_settings,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.packages import package_folder
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.server.remote import config as rc_config

OPTIONAL = settings_toml("batch", "verbose", "mode", "api_key", "crm_url")


def test_an_optional_typed_setting_set_once_can_be_emptied(cli: Run, tmp_path: Path,
                                                           home: Path) -> None:
    install_with_settings(cli, tmp_path, OPTIONAL)
    r = cli("app", "settings", "agent-sync", "batch=25", "verbose=yes", "mode=safe",
            "api_key=-", input="s3cret\n")  # a secret comes on stdin, never on the command line
    assert r.exit_code == 0, r.output
    assert stored_settings(home) == {"batch": 25, "verbose": True, "mode": "safe",
                                     "api_key": "s3cret"}
    r = cli("app", "settings", "agent-sync", "batch=", "verbose=", "mode=", "api_key=")
    assert r.exit_code == 0, r.output
    # Unset, exactly as an optional setting with no default is before anyone sets it.
    assert stored_settings(home) == {}
    doc = json.loads(cli("app", "settings", "agent-sync", "--json").stdout)
    assert doc["settings"]["batch"] is None and doc["settings"]["api_key"] is None
    log = open_readonly(Home(home).host_db, SystemClock())
    try:
        bodies = [e.body for e in log.tail(50) if e.body.get("kind") == "operator.settings"]
    finally:
        log.close()
    assert bodies[-1]["setting_keys"] == ["api_key", "batch", "mode", "verbose"]
    # A required one still cannot be emptied.
    assert cli("app", "settings", "agent-sync", "crm_url=").exit_code == 2


def test_an_integer_past_the_bound_says_the_bound(cli: Run, tmp_path: Path) -> None:
    install_with_settings(cli, tmp_path, OPTIONAL)
    r = cli("app", "settings", "agent-sync", "batch=" + "9" * 19)
    assert r.exit_code == 2
    assert "at most 18 digits" in r.stderr, r.stderr
    assert cli("app", "settings", "agent-sync", "batch=" + "9" * 18).exit_code == 0
    r = cli("app", "settings", "agent-sync", "batch=ten")
    assert r.exit_code == 2 and "must be an integer" in r.stderr


def test_uninstall_says_it_cannot_tell_and_deactivates_no_one(cli: Run, tmp_path: Path,
                                                              home: Path) -> None:
    install_with_settings(cli, tmp_path, OPTIONAL)
    # Connected to a workspace the host will not speak to (plain http to another machine):
    # the users the app created cannot be counted.
    rc_config.save(Home(home), "http://chat.example.com", "svc", "token")
    dry = cli("app", "uninstall", "agent-sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "cannot tell how many users" in dry.stderr, dry.stderr
    assert "plain http" in dry.stderr
    # What needs the server (its agents out of routing, by default) is refused before anything
    # is done, naming the cause; keeping both uninstalls without asking it.
    r = cli("app", "uninstall", "agent-sync", "--yes")
    assert r.exit_code == 2 and "cannot be asked" in r.stderr, r.output
    assert "--agents keep" in r.stderr
    assert json.loads(cli("app", "list", "--json").stdout) != []
    r = cli("app", "uninstall", "agent-sync", "--yes", "--json", "--users", "keep",
            "--agents", "keep")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["users"] == "keep"
    assert "cannot tell how many users" in r.stderr



def test_a_setting_named_without_a_value_is_not_called_unknown(cli: Run, tmp_path: Path) -> None:
    """`app settings APP batch verbose=yes` said "'batch' is not a setting": it is one, given
    without a value."""
    install_with_settings(cli, tmp_path, OPTIONAL)
    r = cli("app", "settings", "agent-sync", "batch", "verbose=yes")
    assert r.exit_code == 2
    assert "not a setting" not in r.stderr and "has no value" in r.stderr, r.stderr
    assert cli("app", "settings", "agent-sync", "nope", "verbose=yes").exit_code == 2


WITH_DEFAULT = OPTIONAL + '''
[[setting]]
key = "retries"
type = "int"
label = "Retries"
default = 3
'''


def test_emptied_is_what_an_install_delivers_also_after_an_update(cli: Run, tmp_path: Path,
                                                                   home: Path) -> None:
    """Empty means "not set by the operator": what a new install gives a setting no one set,
    its default when the manifest has one, else nothing. Emptied to nothing, a setting with a
    default came back as the default at the next update (an update fills unset keys so)."""
    for version in ("1.0.0", "1.1.0"):
        folder = write_folder(tmp_path / f"src-{version}",
                              app_files(settings=WITH_DEFAULT, version=version))
        _, data = package_folder(folder)
        (tmp_path / f"{version}.zip").write_bytes(data)
    r = cli("app", "install", str(tmp_path / "1.0.0.zip"), "--grant", "livechat.read",
            "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert stored_settings(home) == {"retries": 3}
    assert cli("app", "settings", "agent-sync", "retries=7", "batch=5").exit_code == 0
    r = cli("app", "settings", "agent-sync", "retries=", "batch=")
    assert r.exit_code == 0, r.output
    assert stored_settings(home) == {"retries": 3}, r.output
    assert "default" in r.stderr
    r = cli("app", "update", "agent-sync", str(tmp_path / "1.1.0.zip"), "--allow-unsigned")
    assert r.exit_code == 0, r.output
    assert stored_settings(home) == {"retries": 3}
