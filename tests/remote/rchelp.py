"""The stand-in workspace for the remote-adapter tests: `stockade standin` in its own process
(the documented stand-in for a Rocket.Chat workspace, docs/ROCKETCHAT.md), an admin service
account minted into its store before it starts, and a host home connected to it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.personal_tokens import ensure_service_user
from host.server.remote import config
from host.server.remote.client import RcClient
from host.server.remote.server import RemoteServer

STOCKADE = str(Path(sys.executable).parent / "stockade")
SECRET = "test-webhook-secret-0123456789"
# The stand-in runs as a Rocket.Chat 8+ workspace: users.createToken needs this secret.
TOKENS_SECRET = "test-create-tokens-secret-9876"


class Standin:
    """One stand-in process; `restart()` brings it back on the same port with the same data."""

    def __init__(self, root: Path, *, webhook_url: str | None = None,
                 retry_s: float = 0.2, retries: int = 10, concurrency: int = 1) -> None:
        self.home = Home(root / "standin").ensure()
        srv = EmbeddedServer(self.home.server_db, SystemClock())
        user, self.token = ensure_service_user(srv, "stockade")
        self.user_id = user["id"]
        srv.db.close()
        self.root = root
        self.webhook_url, self.retry_s, self.retries = webhook_url, retry_s, retries
        self.concurrency = concurrency
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Standin:
        ready = self.root / "standin.ready"
        ready.unlink(missing_ok=True)
        args = [STOCKADE, "--home", str(self.home.root), "standin", "--port", str(self.port),
                "--ready-file", str(ready), "--faults"]
        if self.webhook_url:
            tok = self.root / "hook.secret"
            tok.write_text(SECRET)
            args += ["--webhook-url", self.webhook_url, "--webhook-token-file", str(tok),
                     "--webhook-retry-s", str(self.retry_s),
                     "--webhook-retries", str(self.retries),
                     "--webhook-concurrency", str(self.concurrency)]
        env = {**os.environ, "CREATE_TOKENS_FOR_USERS_SECRET": TOKENS_SECRET}
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env)
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stand-in did not start: {self.proc.stderr.read()!r}"
                                   if self.proc.stderr else "stand-in did not start")
            time.sleep(0.02)
        self.url = json.loads(ready.read_text())["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def fault(self, route: str, kind: str, value: float, times: int = 1, **extra: Any) -> None:
        httpx.post(f"{self.url}/_standin/faults", json={
            "route": route, "kind": kind, "value": value, "times": times, **extra}, timeout=5)

    def clear_faults(self) -> None:
        httpx.post(f"{self.url}/_standin/faults", json={}, timeout=5)

    def admin(self, method: str, route: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.url}/api/v1/{route}", timeout=10, headers={
            "X-User-Id": self.user_id, "X-Auth-Token": self.token}, **kw)
        return r.json()


def connect(home: Home, s: Standin) -> None:
    config.save(home, s.url, s.user_id, s.token, webhook_secret=SECRET,
                create_tokens_secret=TOKENS_SECRET)


def remote(home: Home, s: Standin, **client: Any) -> RemoteServer:
    connect(home, s)
    return config.open_remote(home, SystemClock(),
                              client=RcClient(s.url, s.user_id, s.token, **client))
