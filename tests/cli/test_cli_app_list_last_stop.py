"""`app list` says why a running app last stopped (the host's words, as the console's apps page
and `app list --json` do): before, the human list showed "restarting in 4.0s (backoff) ...,
restarts 3" and no reason, so an operator had to know to ask `--json` or `app logs`."""
from __future__ import annotations

import os
import time
from pathlib import Path

from apphelp import install, write_app
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures

from host.apps.installs import InstallStore
from host.home import Home
from host.supervise.status import StatusBoard

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"


def test_app_list_says_why_a_running_app_last_stopped(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    install(h, write_app(home.parent / "apps", "flaky", ["livechat.read"], [], SRC))
    with InstallStore(h.host_store) as store:
        rec = store.by_app("flaky")
    assert rec is not None
    board = StatusBoard(h.host_store, os.getpid(), "test-host")
    try:
        board.publish(time.time(), {rec.install_id: ("flaky", {
            "state": "backoff", "backoff_s": 4.0, "restarts": 3, "events_done": 0,
            "events_failed": 1, "queued": 0, "dropped": 0,
            "last_error": "killed for a limit: memory (128 MiB)",
            "last_crash": "\x1b[2Jforged by the app"})})
        out = cli("app", "list").stderr
    finally:
        board.close()
    said = " ".join(out.split())  # the reason wraps in its own column on a narrow screen
    assert "last stop: killed for a limit: memory (128 MiB)" in said, out
    assert "stockade app logs flaky" in said
    assert "forged by the app" not in out and "\x1b" not in out  # the app's own stderr: not here
