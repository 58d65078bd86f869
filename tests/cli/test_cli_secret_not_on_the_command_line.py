"""A secret setting's value is never taken from the command line. `app settings APP
api_key=VALUE` stored it: a command line is readable by every local user while the command
runs (`/proc/PID/cmdline`, `ps`: an unprivileged user polling /proc read it off the real
`stockade` process) and shells keep it in their history. `rocketchat connect` already reads its
token from stdin for that reason; a secret setting now comes the same way (`KEY=-`), and a
value typed inline is refused with nothing changed. Plain settings are as before."""
from __future__ import annotations

import sys
from pathlib import Path

from apphelp import settings_toml
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apps_helpers import app_files, write_folder

from host.apps.installs import InstallStore
from host.apps.packages import package_folder
from host.home import Home


def _install(cli: Run, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files(settings=settings_toml("api_key", "batch")))
    _, data = package_folder(folder)
    pkg = tmp_path / "a.zip"
    pkg.write_bytes(data)
    r = cli("app", "install", str(pkg), "--grant", "livechat.read", "--allow-unsigned")
    assert r.exit_code == 0, r.output


def _settings(home: Path) -> dict[str, object]:
    with InstallStore(Home(home).host_store) as store:
        rec = store.by_app("agent-sync")
        assert rec is not None
        return dict(rec.settings)


def test_a_secret_typed_on_the_command_line_is_refused(cli: Run, tmp_path: Path,
                                                       home: Path) -> None:
    _install(cli, tmp_path)
    r = cli("app", "settings", "agent-sync", "batch=5", "api_key=on-the-command-line")
    assert r.exit_code == 2, r.output
    assert "is a secret" in r.stderr and "api_key=-" in r.stderr
    assert "on-the-command-line" not in r.output
    assert _settings(home) == {}  # nothing changed, the plain setting beside it neither


def test_a_secret_on_stdin_is_taken_and_plain_settings_inline_as_before(
        cli: Run, tmp_path: Path, home: Path) -> None:
    _install(cli, tmp_path)
    r = cli("app", "settings", "agent-sync", "batch=5", "api_key=-", input="from-stdin\n")
    assert r.exit_code == 0, r.output
    assert _settings(home) == {"batch": 5, "api_key": "from-stdin"}
    assert "from-stdin" not in r.output
    # Emptying a secret names no value: still taken inline.
    assert cli("app", "settings", "agent-sync", "api_key=").exit_code == 0
    assert _settings(home) == {"batch": 5}
