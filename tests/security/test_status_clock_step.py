"""A host's published status counts as live only within its freshness window on both sides of
now (`host.supervise.status.is_fresh`).

A row carries the wall time its host wrote it. A host whose clock was then stepped back (NTP
correcting a clock that ran an hour fast) and that was killed with SIGKILL left rows dated in
the future; `now - updated_at` stayed negative, under the window, so `app list`, `doctor` and
the console showed its apps as running for the whole hour though no host ran them. A live
host writes its rows again every `PUBLISH_INTERVAL_S`, with its stepped clock: its own rows are
fresh again at its next round.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from apphelp import install, write_app

from host.home import Home
from host.supervise.status import is_fresh

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "statushost.py"
SRC = '''
from stockade import App

class TestApp(App):
    pass
'''


def _running(home: Home) -> object:
    done = subprocess.run([sys.executable, "-c", "from host.cli.main import main; main()",
                           "--home", str(home.root), "app", "list", "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    return row["running"]


def test_a_killed_hosts_rows_from_before_a_clock_step_back_are_not_live(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "stepped", ["livechat.read"], [], SRC))
    host = subprocess.Popen([sys.executable, str(WORKER), str(home.root), "3600"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None and host.stdout.readline() == "up\n"
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
    assert _running(home) is None


def test_the_window_holds_on_both_sides_of_now() -> None:
    now = 1_800_000_000.0
    assert is_fresh({"updated_at": now - 1}, now) and is_fresh({"updated_at": now + 1}, now)
    assert not is_fresh({"updated_at": now - 3600}, now)
    assert not is_fresh({"updated_at": now + 3600}, now)
