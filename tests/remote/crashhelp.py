"""`stockade serve --server rocketchat` SIGKILLed while an app's users.create is admitted and on
its way to a stand-in workspace (`rchelp.Standin`): the setup the crash tests share."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
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


def serve(home: Home, port: int) -> subprocess.Popen[str]:
    """`stockade serve` on `port`, once it says its webhook receiver listens."""
    proc = subprocess.Popen([STOCKADE, "--home", str(home.root), "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "webhook receiver:" in line:
            return proc
    raise AssertionError(f"serve did not start (exit {proc.wait(10)})")


def rows(home: Home, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home.host_db) as db:
        return list(db.execute(sql).fetchall())


@dataclass
class Crashed:
    standin: Standin
    home: Home
    port: int


def crash_mid_create(tmp_path: Path, *, applied: bool) -> Crashed:
    """Serve, have the app's create reach the workspace (its answer held back), then SIGKILL
    the host: after the write was applied there (`applied`), or as soon as it is pending."""
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
    proc = serve(home, port)
    try:
        s.fault("users.create", "delay-after", 60.0, times=1)
        httpx.post(f"{s.url}/api/v1/livechat/visitor",
                   json={"visitor": {"token": "tok-crash-0123456789", "name": "C"}})
        httpx.get(f"{s.url}/api/v1/livechat/room", params={"token": "tok-crash-0123456789"})
        deadline = time.monotonic() + 30
        while not (rows(home, "SELECT 1 FROM rc_ops WHERE action='users.create' AND "
                              "state='pending'")
                   and (not applied or s.admin("GET", "users.info", params={
                       "username": "made-by-crashapp"}).get("success"))):
            assert time.monotonic() < deadline, "the create never reached the workspace"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # decision durable, its outcome never written
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return Crashed(s, home, port)
