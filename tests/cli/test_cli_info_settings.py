"""`app info` in words, publisher trust now, required settings flagged, one setting printed,
an empty required value refused, `uninstall` says what it deletes and asks, and the update
screen's wording follows the diff."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.packages import package_folder

REQUIRED = '''
[[setting]]
key = "crm_url"
type = "string"
label = "CRM address"
required = true
'''


def _pkg(tmp_path: Path, name: str, **kw: object) -> Path:
    folder = write_folder(tmp_path / f"src-{name}", app_files(**kw))
    _, data = package_folder(folder)
    out = tmp_path / f"{name}.zip"
    out.write_bytes(data)
    return out


def _install(cli: Run, pkg: Path, *extra: str) -> None:
    r = cli("app", "install", str(pkg), "--grant", "livechat.read", *extra)
    assert r.exit_code == 0, r.output


def test_info_is_words_not_python_reprs(cli: Run, tmp_path: Path) -> None:
    _install(cli, _pkg(tmp_path, "a", settings=REQUIRED), "--allow-unsigned")
    r = cli("app", "info", "agent-sync")
    assert r.exit_code == 0, r.output
    for repr_bit in ("['", "{'", "None", "True", "False"):
        assert repr_bit not in r.stderr, repr_bit
    assert "granted:    livechat.read" in r.stderr
    assert "not granted (PermissionDenied): users.create" in r.stderr
    assert "crm_url: <unset>  <- required, not set" in r.stderr
    assert "needs settings: crm_url" in cli("app", "list").stderr
    doc = json.loads(cli("app", "info", "agent-sync", "--json").stdout)
    assert doc["missing_settings"] == ["crm_url"]


def test_info_shows_publisher_trust_now(cli: Run, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    assert cli("keys", "generate", str(keys / "pub")).exit_code == 0
    pkg = _pkg(tmp_path, "a")
    assert cli("app", "sign", str(pkg), "--key", str(keys / "pub")).exit_code == 0
    assert cli("keys", "trust", str(keys / "pub.pub"), "--name", "acme").exit_code == 0
    _install(cli, pkg)
    assert "signed by acme" in cli("app", "info", "agent-sync").stderr
    assert cli("keys", "untrust", "acme").exit_code == 0
    r = cli("app", "info", "agent-sync")
    assert "which is not in the trust store" in r.stderr
    assert "(at install: signed by acme" in r.stderr
    doc = json.loads(cli("app", "info", "agent-sync", "--json").stdout)
    assert doc["publisher_now"]["status"] == "unknown-publisher"
    assert doc["publisher"]["status"] == "trusted"  # what it was at install


def test_settings_one_key_and_empty_required_refused(cli: Run, tmp_path: Path) -> None:
    _install(cli, _pkg(tmp_path, "a", settings=REQUIRED), "--allow-unsigned")
    unset = cli("app", "settings", "agent-sync", "crm_url")
    assert unset.exit_code == 1 and "crm_url is not set (required)" in unset.stderr
    empty = cli("app", "settings", "agent-sync", "crm_url=  ")
    assert empty.exit_code == 2 and "an empty value is refused" in empty.stderr
    assert cli("app", "settings", "agent-sync", "crm_url=https://crm.example").exit_code == 0
    one = cli("app", "settings", "agent-sync", "crm_url")
    assert one.exit_code == 0 and one.stdout == "https://crm.example\n"
    assert cli("app", "settings", "agent-sync", "nope").exit_code == 2


def test_uninstall_says_what_it_deletes_and_asks(cli: Run, tmp_path: Path, home: Path) -> None:
    _install(cli, _pkg(tmp_path, "a"), "--allow-unsigned")
    r = cli("app", "uninstall", "agent-sync")
    assert r.exit_code == 3, r.output
    assert "stored item(s) in its private storage" in r.stderr and "--yes" in r.stderr
    dry = cli("app", "uninstall", "agent-sync", "--dry-run")
    assert dry.exit_code == 0 and "dry run: nothing changed" in dry.stderr
    assert json.loads(cli("app", "list", "--json").stdout) != []
    assert cli("app", "uninstall", "agent-sync", "--yes").exit_code == 0
    assert json.loads(cli("app", "list", "--json").stdout) == []


def test_update_asking_for_less_never_says_more_access(cli: Run, tmp_path: Path) -> None:
    _install(cli, _pkg(tmp_path, "a"), "--allow-unsigned")
    keys = tmp_path / "keys"
    keys.mkdir()
    assert cli("keys", "generate", str(keys / "pub")).exit_code == 0
    less = _pkg(tmp_path, "b", version="2.0.0", permissions=("livechat.read",))
    assert cli("app", "sign", str(less), "--key", str(keys / "pub")).exit_code == 0
    r = cli("app", "update", "agent-sync", str(less), "--allow-unsigned")
    assert r.exit_code == 1, r.output  # a new publisher key waits for consent
    assert "asks for more access" not in r.stderr
    assert "signed by a different publisher key" in r.stderr


EVIL_DEFAULT = r'''
[[setting]]
key = "greeting"
type = "string"
label = "Greeting"
default = "hi\u001b]0;pwned-title\u0007\u001b[2Jsigned by acme\r\u202eevil"
'''


def test_one_setting_never_reaches_the_terminal_or_a_script_altered(cli: Run,
                                                                      tmp_path: Path) -> None:
    """`app settings APP KEY` wrote the value raw: an author's default could retitle the
    operator's terminal (OSC), clear it, or return the cursor to forge a line. Now a value with
    control or format characters is never printed as it is: refused on a pipe (a script must
    not get an altered value) with a pointer to --json, which keeps it exactly."""
    _install(cli, _pkg(tmp_path, "a", settings=EVIL_DEFAULT), "--allow-unsigned")
    one = cli("app", "settings", "agent-sync", "greeting")
    assert one.exit_code != 0 and "\x1b" not in one.stdout and "\u202e" not in one.stdout
    assert "--json" in one.stderr
    exact = json.loads(cli("app", "settings", "agent-sync", "greeting", "--json").stdout)
    assert exact["value"].startswith("hi\x1b]0;pwned-title\x07")
