"""A serving host whose store another process keeps locked says who, once, in one line.

A `stockade serve` stopped (SIGSTOP, Ctrl-Z) in the middle of a write holds `host.db`'s write
lock for as long as it is stopped; every write of another host serving the same home waits out
its busy timeout and fails. The upkeep's status publication logged a full traceback every
round ("sqlite3.OperationalError: database is locked") and named no process: the operator had
to guess that a stopped host was the cause.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from apphelp import install, write_app

import host.store.sqlite as sqlite_store
from host.home import Home
from host.runtime import Host, HostConfig

STOPPED_WRITER = ("import os, signal, sqlite3, sys; c = sqlite3.connect(sys.argv[1], "
                  "isolation_level=None); c.execute('BEGIN IMMEDIATE'); "
                  "print('held', flush=True); os.kill(os.getpid(), signal.SIGSTOP)")
SRC = '''
from stockade import App

class TestApp(App):
    pass
'''


def test_a_locked_store_is_one_line_naming_the_stopped_holder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "locked", ["livechat.read"], [], SRC))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        host.rounds.stopping.set()  # no upkeep round of its own: the test runs them
        writer = subprocess.Popen([sys.executable, "-c", STOPPED_WRITER, str(home.host_db)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "held\n"
            monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 300)
            with caplog.at_level(logging.ERROR, logger="stockade.host"):
                for _ in range(3):
                    host.publish_status()
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
        said = [r for r in caplog.records if "publish the apps' status" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]
        assert said[0].exc_info is None  # one line, no traceback
        line = said[0].getMessage()
        assert f"process {writer.pid}" in line and ", stopped" in line, line
        host.publish_status()  # the lock is free again: published
