"""The host's webhook receiver over real loopback HTTP, fed by a stand-in workspace process
(`rchelp.Standin`): the rig the webhook tests share."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rchelp import SECRET, Standin, remote

from host.home import Home
from host.server.listen import tcp_listener
from host.server.remote import webhook
from host.server.remote.receiver import PATH, WebhookReceiver
from host.server.remote.server import RemoteServer


class Rig:
    """`retries` and `concurrency`: the stand-in's webhook sender's (Rocket.Chat retries a
    delivery 10 times and sends each on its own)."""

    def __init__(self, root: Path, retries: int = 10, concurrency: int = 1) -> None:
        self.sock = tcp_listener("127.0.0.1", 0)
        self.hook_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{PATH}"
        self.standin = Standin(root, webhook_url=self.hook_url, retry_s=0.2,
                               retries=retries, concurrency=concurrency).start()
        try:
            self.rs: RemoteServer = remote(Home(root / "host").ensure(), self.standin)
            self.events: list[tuple[str, dict[str, Any]]] = []
            self._lock = threading.Lock()  # a burst's events arrive on several threads
            self.rs.subscribe(self._take)
            self.receiver = WebhookReceiver(self.rs, SECRET)
        except BaseException:
            # The caller gets no rig to stop: the stand-in process would outlive the test run
            # (one did, started by a run against a half-edited tree).
            self.standin.stop()
            self.sock.close()
            raise
        self.uv = uvicorn.Server(uvicorn.Config(self.receiver.app(), log_level="critical",
                                                lifespan="off"))
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def _take(self, name: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((name, payload))

    def start(self) -> Rig:
        self.receiver.start()
        self.thread.start()
        while not self.uv.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.uv.should_exit = True
        self.thread.join(5)
        self.receiver.stop()
        self.standin.stop()

    def settle(self, timeout: float = 15.0, calm_for: int = 2,
               poll_s: float = 0.05) -> dict[str, int]:
        """Until the stand-in has no webhook left to send and the inbox is processed (`calm_for`
        looks in a row); the stand-in's last status."""
        deadline = time.monotonic() + timeout
        calm = 0
        status: dict[str, int] = {}
        while time.monotonic() < deadline and calm < calm_for:
            status = httpx.get(f"{self.standin.url}/_standin/status", timeout=5).json()
            quiet = status["webhooks_pending"] == 0 and self.receiver.idle()
            calm = calm + 1 if quiet else 0
            time.sleep(poll_s)
        return status

    def post(self, body: bytes, token: str | None = SECRET, **headers: str) -> httpx.Response:
        h = {"Content-Type": "application/json", **headers}
        if token is not None:
            h[webhook.TOKEN_HEADER] = token
        return httpx.post(self.hook_url, content=body, headers=h, timeout=10)

    def names(self) -> list[str]:
        return [n for n, _ in self.events]
