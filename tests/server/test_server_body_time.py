"""Every HTTP server the product runs gives a request's body a time limit (host/server/listen.py).

Before, a body sent a byte at a time, under every size cap, held its connection and the handler
waiting on it forever: a client with no credentials could hold as many as it opened. What must
hold: a body not finished within BODY_TIMEOUT_S of its head is answered 408 and its connection
closed, on the REST API, the console and the webhook receiver; the handler that was reading it
ends quietly (no traceback in the server's log: the client's fault, not the server's); a body
sent at once, or in pieces within the limit, is served as before.
"""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount
from test_server_head_caps import _read_answer, _status

from host.clock import SystemClock
from host.console.app import create_console
from host.home import Home
from host.server import listen
from host.server.embedded import EmbeddedServer

LIMIT_S = 0.6  # the limit, shortened for the test


@contextmanager
def _served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *,
            console: bool = False) -> Iterator[int]:
    """The REST API (and the console beside it) from a thread, as `listen.serving` runs it."""
    monkeypatch.setattr(listen, "BODY_TIMEOUT_S", LIMIT_S, raising=False)
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    mounts = [Mount("/console", create_console(home, server))] if console else []
    try:
        with listen.serving(server, mounts) as (base, _server, _uv):
            yield int(base.rsplit(":", 1)[1])
    finally:
        server.close()


def _head(path: str, length: int, kind: str = "application/json", origin: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
            + (f"Origin: {origin}\r\n" if origin else "")
            + f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()


def _drip(port: int, head: bytes, body: bytes, every_s: float) -> tuple[bytes, float]:
    """`head`, then `body` a byte at a time, one every `every_s`, until the server speaks or
    closes; (its answer, seconds from the head to the answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        t0 = time.monotonic()
        for byte in body:
            s.settimeout(every_s)
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break  # the server spoke
            except TimeoutError:
                pass
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break  # it closed
        answer = _read_answer(s)
        return answer, time.monotonic() - t0


def test_a_body_dripped_past_the_limit_is_answered_408_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"user": "someone", "password": "' + b"p" * 200 + b'"}'
    with _served(tmp_path, monkeypatch) as port:
        with caplog.at_level(logging.WARNING):
            answer, took = _drip(port, _head("/api/v1/login", len(body)), body, every_s=0.05)
            assert _status(answer) == 408, answer[:200]
            assert b"connection: close" in answer.lower()
            assert took < LIMIT_S + 3.0
            time.sleep(0.2)  # the handler's end, on the server's loop
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not errors, [r.getMessage() for r in errors]
        # The server still serves, and a body sent in pieces within the limit is read whole.
        answer, _took = _drip(port, _head("/api/v1/login", 2), b"{}", every_s=0.05)
        assert _status(answer) == 400 and b"success" in answer, answer[:300]
        assert httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=10).status_code == 200


def test_the_consoles_form_bodies_have_the_same_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    body = b"username=operator&password=" + b"x" * 200
    with _served(tmp_path, monkeypatch, console=True) as port, caplog.at_level(logging.WARNING):
        head = _head("/console/login", len(body), "application/x-www-form-urlencoded",
                     origin="http://127.0.0.1")  # the Host the head names
        answer, took = _drip(port, head, body, every_s=0.05)
        assert _status(answer) == 408, answer[:200]
        assert took < LIMIT_S + 3.0
        time.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
