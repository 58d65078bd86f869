"""A host killed mid-write on a Rocket.Chat workspace, started again while the workspace
answers but cannot say whether that write applied (its read-back fails with 503): the host
serves, the unsettled write keeps its units reserved (the safe side) and is settled at a later
start. Before, `serve` refused to start with "error: unexpected Unavailable ... please report
it" for as long as the read-back failed.

The lease settles every unfinished call as a host starts alone (`host.ledger.lease`), asking the
workspace whether each was applied; an answer it could not get raised out of the settlement, out
of the lease and out of `Host.start`, though nothing else needed that write.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
from apphelp import install, write_app
from rchelp import STOCKADE, Standin, connect

from host.home import Home

APP = "crashapp"
POLICY = f'''
schema = 1
name = "crash"
[[rule]]
id = "crash-read"
effect = "permit"
apps = ["{APP}"]
actions = ["livechat.read"]
[[rule]]
id = "crash-create"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
[[quota]]
id = "crash-creates"
apps = ["{APP}"]
action = "users.create"
limit = 5
window = "1h"
scope = "install"
'''
SOURCE = '''from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        ctx.users.create(username="made-by-crashapp", name="Made", type="bot", roles=["bot"])
'''


def _serve(home: Home, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([STOCKADE, "--home", str(home.root), "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "webhook receiver:" in line:
            return proc
    raise AssertionError(f"serve did not start (exit {proc.wait(10)})")


def _rows(home: Home, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home.host_db) as db:
        return list(db.execute(sql).fetchall())


def test_a_host_killed_mid_write_starts_again_while_the_workspace_is_down(
        tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = Standin(tmp_path / "s", webhook_url=f"http://127.0.0.1:{port}/rocketchat/webhook",
                retry_s=0.2).start()
    home = Home(tmp_path / "h").ensure()
    connect(home, s)
    (home.policies_dir / "crash.toml").write_text(POLICY)
    install(home, write_app(home.root / "src", APP, ["users.create", "livechat.read"],
                            ["livechat.room_started"], SOURCE))
    proc = _serve(home, port)
    try:
        s.fault("users.create", "delay-after", 60.0, times=1)
        httpx.post(f"{s.url}/api/v1/livechat/visitor",
                   json={"visitor": {"token": "tok-crash-0123456789", "name": "C"}})
        httpx.get(f"{s.url}/api/v1/livechat/room", params={"token": "tok-crash-0123456789"})
        deadline = time.monotonic() + 30
        while not _rows(home, "SELECT 1 FROM rc_ops WHERE action='users.create' AND "
                              "state='pending'"):
            assert time.monotonic() < deadline, "the create never reached the workspace"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # decision durable, its outcome never written
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    s.clear_faults()
    # The workspace answers, but cannot read its users back (503) for now.
    s.fault("users.info", "status", 503, times=1000)
    again = subprocess.Popen([STOCKADE, "--home", str(home.root), "serve", "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        assert again.stderr is not None
        for line in again.stderr:
            said += line
            if "webhook receiver:" in line:
                break
        assert again.poll() is None, f"serve did not start (exit {again.wait(10)}): {said}"
        # Kept pending, its units reserved, for a start that can ask the workspace.
        assert len(_rows(home, "SELECT op_id FROM audit_intents")) == 1
    finally:
        if again.poll() is None:
            again.send_signal(signal.SIGINT)
            again.wait(20)
        s.stop()
