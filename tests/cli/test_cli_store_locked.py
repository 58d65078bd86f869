"""An operator command kept from `host.db`'s write lock says so in one line, naming the process
that holds it, and changes nothing.

A `stockade serve` stopped (SIGSTOP, a terminal's Ctrl-Z) in the middle of a write holds the
store's write lock for as long as it is stopped (seen with a real `serve` under REST load).
Every operator command that writes (`app disable`, `app enable`, `keys host-rotate`, even
`app list`) then waited out the busy timeout and printed "error: unexpected OperationalError:
database is locked ... please report it": a bug report for an operator's situation, with no
word of which process or why.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from apphelp import install, write_app

from host.apps.installs import InstallStore
from host.home import Home

REPO = Path(__file__).resolve().parents[2]
# The operator's command, its busy timeout cut from 10 s to 0.3 s by the test's own wrapper.
CLI = ("import host.store.sqlite as s; s.BUSY_TIMEOUT_MS = 300; "
       "from host.cli.main import main; main()")
# A process that stops itself in the middle of a write transaction on host.db.
STOPPED_WRITER = ("import os, signal, sqlite3, sys; c = sqlite3.connect(sys.argv[1], "
                  "isolation_level=None); c.execute('BEGIN IMMEDIATE'); "
                  "print('held', flush=True); os.kill(os.getpid(), signal.SIGSTOP)")
SRC = '''
from stockade import App

class TestApp(App):
    pass
'''


def _cli(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, "--home", str(home.root), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_a_command_kept_from_the_write_lock_names_the_stopped_holder(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "locked", ["livechat.read"], [], SRC))
    writer = subprocess.Popen([sys.executable, "-c", STOPPED_WRITER, str(home.host_db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "held\n"
        done = _cli(home, "app", "disable", "locked")
        err = done.stderr
        assert done.returncode == 1, err
        assert "unexpected" not in err and "please report" not in err, err
        assert f"{home.host_db} is locked: process {writer.pid}" in err, err
        assert ", stopped (`kill -CONT` resumes it)" in err and "hint: " in err, err
        assert len(err.splitlines()) == 2 and done.stdout == ""
        # A command that only reads is not kept at all: opening the store's current components
        # takes no write lock (`ensure_schema`), and WAL serves reads beside a writer. Before,
        # `app list` waited out the busy timeout and failed as `app disable` does.
        listed = _cli(home, "app", "list", "--json")
        assert listed.returncode == 0 and '"locked"' in listed.stdout, listed.stderr
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    store = InstallStore(home.host_store)
    after = store.get(rec.install_id)
    store.close()
    assert after is not None and after.enabled  # nothing of the disable was made
    assert _cli(home, "app", "disable", "locked").returncode == 0  # the lock is free again
