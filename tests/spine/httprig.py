"""What the outbound-HTTP spine tests share: the policy text that lets an app call out, a
loopback server that answers each request head as a test says, and a gate whose host-name
lookups are answered and written down by the test.

Each test file keeps its own assertions; this module only builds the stage they stand on, so a
change to how a policy permits `http.request` or how a stand-in server reads a request is made
once.
"""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from gatehelp import GateRig

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def http_policy(app: str, domains: list[str], *, rule_id: str = "crm-api",
                allow_private: list[str] | None = None,
                forbid: tuple[str, list[str]] | None = None,
                quota: tuple[str, int] | None = None) -> str:
    """A policy file named "http" permitting `app` `http.request` to `domains` (and the private
    addresses `allow_private`); `forbid`: (rule id, domains) a forbid of the same app refuses;
    `quota`: (quota id, limit) of its calls an hour."""
    def when(names: list[str]) -> str:
        return f"[rule.when]\ndomains = {json.dumps(names)}\n"

    def rule(rid: str, effect: str) -> str:
        return (f'[[rule]]\nid = "{rid}"\neffect = "{effect}"\napps = ["{app}"]\n'
                'actions = ["http.request"]\n')

    text = '\nschema = 1\nname = "http"\n' + rule(rule_id, "permit") + when(domains)
    if allow_private is not None:
        text += f"allow_private = {json.dumps(allow_private)}\n"
    if forbid is not None:
        text += rule(forbid[0], "forbid") + when(forbid[1])
    if quota is not None:
        text += (f'[[quota]]\nid = "{quota[0]}"\napps = ["{app}"]\naction = "http.request"\n'
                 f'limit = {quota[1]}\nwindow = "1h"\n')
    return text


def redirect_to(target: str, status: int = 302) -> bytes:
    """An answer redirecting to `target`, with no body."""
    return (f"HTTP/1.1 {status} Moved\r\nLocation: {target}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n").encode()


def read_head(conn: socket.socket) -> bytes:
    """What a client sent up to the end of its request head (all it sent, if it stopped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class Loopback:
    """A loopback server answering each connection's request with `answer(head)`; it counts
    the connections and keeps each request head it read (`handle`)."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        """The path of each request that reached it, in order."""
        return [head.split(b" ", 2)[1].decode() for head in self.heads]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                self.handle(conn)
            except OSError:
                pass  # the client went away (or refused a certificate)
            finally:
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        """Read one request head and answer it; a server that reads more overrides this."""
        conn.settimeout(2.0)
        data = read_head(conn)
        if data:
            self.heads.append(data)
            conn.sendall(self.answer(data))

    def close(self) -> None:
        self.sock.close()


def get(rig: GateRig, url: str) -> Any:
    """An app's GET of `url`, entering the gate as its child's Call frame would."""
    return rig.gate.handle(rig.session, "http.request", {"method": "GET", "url": url})


def record_lookups(rig: GateRig, answer: Callable[[str, int], list[str]]) -> list[str]:
    """Answer the gate's host-name lookups with `answer(name, lookups so far)` (which may raise
    as a resolver does); the list it returns holds each name looked up, in order."""
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return answer(name, len(asked))
    rig.gate.resolve = resolve
    return asked
