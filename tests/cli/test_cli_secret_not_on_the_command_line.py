"""A secret setting's value is never taken from the command line. `app settings APP
api_key=VALUE` stored it: a command line is readable by every local user while the command
runs (`/proc/PID/cmdline`, `ps`: an unprivileged user polling /proc read it off the real
`stockade` process) and shells keep it in their history. `rocketchat connect` already reads its
token from stdin for that reason; a secret setting now comes the same way (`KEY=-`), and a
value typed inline is refused with nothing changed. Plain settings are as before."""
from __future__ import annotations

from pathlib import Path

from apphelp import settings_toml
from clihelp import (  # noqa: F401  (the fixtures)
    Run,
    cli_fixture,
    home_fixture,
    install_with_settings,
    stored_settings,
)


def test_a_secret_typed_on_the_command_line_is_refused(cli: Run, tmp_path: Path,
                                                       home: Path) -> None:
    install_with_settings(cli, tmp_path, settings_toml("api_key", "batch"))
    r = cli("app", "settings", "agent-sync", "batch=5", "api_key=on-the-command-line")
    assert r.exit_code == 2, r.output
    assert "is a secret" in r.stderr and "api_key=-" in r.stderr
    assert "on-the-command-line" not in r.output
    assert stored_settings(home) == {}  # nothing changed, the plain setting beside it neither


def test_a_secret_on_stdin_is_taken_and_plain_settings_inline_as_before(
        cli: Run, tmp_path: Path, home: Path) -> None:
    install_with_settings(cli, tmp_path, settings_toml("api_key", "batch"))
    r = cli("app", "settings", "agent-sync", "batch=5", "api_key=-", input="from-stdin\n")
    assert r.exit_code == 0, r.output
    assert stored_settings(home) == {"batch": 5, "api_key": "from-stdin"}
    assert "from-stdin" not in r.output
    # Emptying a secret names no value: still taken inline.
    assert cli("app", "settings", "agent-sync", "api_key=").exit_code == 0
    assert stored_settings(home) == {"batch": 5}
