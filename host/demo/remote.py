"""`stockade demo --server rocketchat`: the same story against a stand-in workspace in its own
process (`stockade standin`), reached only over its REST API and its webhooks.

`RemoteRig` starts the stand-in (its data in the demo's temporary folder, an admin service
account minted into it before it starts), connects the demo's home to it (token and webhook
secret in HOME, 0600), and serves the host's webhook receiver on loopback. `RemoteWorld` is what
the demo's narrator does on the workspace — what an operator, an agent or a visitor would do in
Rocket.Chat — through the REST API: the apps never see any of it but their events.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.listen import tcp_listener
from host.server.personal_tokens import ensure_service_user
from host.server.principals import SYSTEM, Principal
from host.server.remote import config, convert
from host.server.remote.receiver import PATH, WebhookReceiver
from host.server.remote.server import RemoteServer
from host.server.shapes import Agent, Department, Message, Room, User, Visitor

START_TIMEOUT_S = 30.0
# The stand-in's webhook retry spacing for the demo (Rocket.Chat: 10 s; nothing fails here).
RETRY_S = 0.5


class RemoteRig:
    """The stand-in process, the home's connection to it, and the webhook receiver."""

    def __init__(self, root: Path, home: Home) -> None:
        self.root, self.home = root, home
        self.standin_home = Home(root / "standin").ensure()
        self.proc: subprocess.Popen[bytes] | None = None
        self.receiver: WebhookReceiver | None = None
        self.remote: RemoteServer | None = None
        self._uv: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> RemoteServer:
        srv = EmbeddedServer(self.standin_home.server_db, SystemClock())
        user, token = ensure_service_user(srv, "stockade")
        srv.db.close()
        sock = tcp_listener("127.0.0.1", 0)
        hook_url = f"http://127.0.0.1:{sock.getsockname()[1]}{PATH}"
        conf = config.save(self.home, "http://127.0.0.1:1", user["id"], token)
        secret_file = self.root / "standin-webhook.secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(conf.webhook_secret)
        ready = self.root / "standin.ready"
        log = (self.root / "standin.log").open("ab")  # the child's own copy stays open
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from host.cli.entry import main; main()",
             "--home", str(self.standin_home.root), "standin", "--port", "0",
             "--ready-file", str(ready), "--webhook-url", hook_url,
             "--webhook-token-file", str(secret_file), "--webhook-retry-s", str(RETRY_S),
             # It dies with the demo, however the demo ends (it is not in the demo's session).
             "--parent-pid", str(os.getpid())],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stand-in workspace did not start")
            time.sleep(0.02)
        self.url = json.loads(ready.read_text())["url"]
        config.save(self.home, self.url, user["id"], token, webhook_secret=conf.webhook_secret)
        self.remote = config.open_remote(self.home, SystemClock())
        self.receiver = WebhookReceiver(self.remote, conf.webhook_secret)
        self._uv = uvicorn.Server(uvicorn.Config(self.receiver.app(), log_level="critical",
                                                 lifespan="off"))
        self._thread = threading.Thread(target=self._uv.run, kwargs={"sockets": [sock]},
                                        name="demo-webhooks", daemon=True)
        self._thread.start()
        while not self._uv.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.remote

    def start_receiver(self) -> None:
        """Start turning webhooks into events (once the host subscribed to them)."""
        assert self.receiver is not None
        self.receiver.start()

    def settle(self, host_idle: Any, timeout: float = 20.0) -> bool:
        """Until the stand-in has no webhook left to send, the inbox is empty and the apps are
        idle, twice in a row (a handler's call can make the workspace send another)."""
        assert self.receiver is not None
        deadline = time.monotonic() + timeout
        calm = 0
        with httpx.Client(base_url=self.url, timeout=5, trust_env=False) as status:
            while time.monotonic() < deadline:
                out = status.get("/_standin/status").json()["webhooks_pending"] == 0
                quiet = out and self.receiver.idle() and host_idle(2.0)
                calm = calm + 1 if quiet else 0
                if calm >= 2:
                    return True
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Idempotent."""
        if self.receiver is not None:
            self.receiver.stop()
        if self._uv is not None:
            self._uv.should_exit = True
            if self._thread is not None:
                self._thread.join(5)
            self._uv = None
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if self.remote is not None:
            self.remote.close()
            self.remote = None


class RemoteWorld:
    """The demo's people acting on the workspace over REST (see the module docstring)."""

    def __init__(self, remote: RemoteServer) -> None:
        self.remote = remote

    # -- what the operator, agents and visitors do --------------------------------------------
    def users_create(self, caller: Principal, username: str, name: str, type: str) -> User:
        return self.remote.users_create(caller, username, name, type)

    def livechat_add_agent(self, caller: Principal, user_id: str) -> Agent:
        return self.remote.livechat_add_agent(caller, user_id)

    def set_agent_status(self, user_id: str, status: str) -> Agent:
        return self.remote.set_agent_status(user_id, status)

    def add_department(self, name: str, agent_ids: Sequence[str] = ()) -> Department:
        """POST livechat/department {department: {name, enabled}, agents: [{agentId}]}."""
        doc = self.remote.post("livechat/department", {
            "department": {"name": name, "enabled": True, "showOnRegistration": True},
            "agents": [{"agentId": a} for a in agent_ids]}, idempotent=False)
        return convert.department(doc["department"], doc.get("agents") or [])

    def save_visitor(self, token: str, name: str,
                     custom_fields: Mapping[str, str] | None = None) -> Visitor:
        """POST livechat/visitor (the widget's call; public)."""
        fields = [{"key": k, "value": v, "overwrite": True}
                  for k, v in (custom_fields or {}).items()]
        doc = self.remote.post("livechat/visitor", {"visitor": {
            "token": token, "name": name, "customFields": fields}}, idempotent=True)
        return convert.visitor(doc["visitor"])

    def visitor_start_room(self, visitor_id: str, department: str | None = None) -> Room:
        return self.remote.livechat_create_room(SYSTEM, visitor_id, department)

    def visitor_send_message(self, visitor_id: str, room_id: str, text: str) -> None:
        """POST livechat/message {token, rid, msg} (the widget's call)."""
        token = self.remote.livechat_get_visitor(SYSTEM, visitor_id)["token"]
        self.remote.post("livechat/message", {"token": token, "rid": room_id, "msg": text},
                         idempotent=False)

    def agent_close_room(self, agent_user_id: str, room_id: str, comment: str | None = None
                         ) -> Room:
        return self.remote.livechat_close_room(SYSTEM, room_id, comment)

    # -- what the narrator reads --------------------------------------------------------------
    def users_get_by_username(self, caller: Principal, username: str) -> User:
        return self.remote.users_get_by_username(caller, username)

    def livechat_get_room(self, caller: Principal, room_id: str) -> Room:
        return self.remote.livechat_get_room(caller, room_id)

    def livechat_get_department(self, caller: Principal, department: str) -> Department:
        return self.remote.livechat_get_department(caller, department)

    def messages_list(self, caller: Principal, room_id: str) -> list[Message]:
        return self.remote.messages_list(caller, room_id, 500)
