"""A secret typed at a terminal is not echoed: `app settings APP KEY=-` for a secret setting and
`rocketchat connect`'s token and users.createToken secret read their lines with the terminal's
ECHO off (`host.cli.ask.secret_line`), after a prompt on stderr. Both read the line with echo
on: what the operator typed or pasted stayed on the screen, in the scrollback and in any
recording of the session. Piped input is read as before (every other test pipes it)."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from apphelp import settings_toml
from apps_helpers import app_files, write_folder

from host.apps.installs import InstallStore
from host.apps.packages import package_folder
from host.home import Home
from host.server.remote import config

STOCKADE = str(Path(sys.executable).parent / "stockade")
# How long a prompt is waited for before the line is typed anyway (only an unfixed command,
# which prompts for nothing, ever waits this long).
PROMPT_WAIT_S = 5.0


def _at_a_terminal(argv: list[str], lines: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Run `argv` on a pseudo-terminal (stdin, stdout and stderr), typing each line once its
    prompt is on the screen; returns the exit code and everything the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    screen, todo = b"", list(lines)
    waited_since = time.monotonic()
    try:
        while True:
            if todo and (todo[0][0] in screen
                         or time.monotonic() - waited_since > PROMPT_WAIT_S):
                os.write(master, todo.pop(0)[1])
                waited_since = time.monotonic()
            ready = select.select([master], [], [], 0.05)[0]
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the command ended and closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None and not todo:
                break
        return proc.wait(timeout=30), screen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_a_secret_setting_typed_at_a_terminal_is_not_shown(cli: Run, home: Path,
                                                           tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "src", app_files(settings=settings_toml("api_key")))
    _, data = package_folder(folder)
    (tmp_path / "a.zip").write_bytes(data)
    assert cli("app", "install", str(tmp_path / "a.zip"), "--grant", "livechat.read",
               "--allow-unsigned").exit_code == 0
    code, screen = _at_a_terminal(
        [STOCKADE, "--home", str(home), "app", "settings", "agent-sync", "api_key=-"],
        [(b"api_key (secret, not shown): ", b"typed-at-the-tty-41\n")])
    assert code == 0, screen
    assert b"typed-at-the-tty-41" not in screen, screen
    with InstallStore(Home(home).host_store) as store:
        rec = store.by_app("agent-sync")
    assert rec is not None and rec.settings["api_key"] == "typed-at-the-tty-41"


def test_connect_reads_the_token_at_a_terminal_unechoed(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, screen = _at_a_terminal(
        [STOCKADE, "--home", str(home), "rocketchat", "connect", "--url",
         "https://chat.example.com", "--user-id", "svc"],
        [(b"personal access token (not shown): ", b"pat-typed-at-the-tty-77\n"),
         (b"CREATE_TOKENS_FOR_USERS_SECRET", b"ct-secret-typed-88\n")])
    assert code == 0, screen
    assert b"pat-typed-at-the-tty-77" not in screen and b"ct-secret-typed-88" not in screen
    stored = json.loads(config.secret_path(Home(home)).read_text())
    assert stored["token"] == "pat-typed-at-the-tty-77"
    assert stored["create_tokens_secret"] == "ct-secret-typed-88"
