"""Every socket the product listens on gives its connections TCP_NODELAY (host/server/listen.py).

Without it uvicorn's separate head and body writes meet the client's delayed ACK and each request
takes ~40 ms (issue 27 measured 44 ms for the bench's REST create). The check reads the option on
the server's own accepted socket, so it needs no timing; the control shows the check sees the
difference a proto-0 socket makes.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx

from host.clock import ManualClock
from host.server import listen
from host.server.embedded import EmbeddedServer


def _accepted_nodelay(tmp_path: Path) -> list[int]:
    server = EmbeddedServer(tmp_path / "server.db", ManualClock())
    try:
        with listen.serving(server) as (base, _server, uv), httpx.Client(base_url=base) as c:
            c.get("/api/info")  # any answer: we only need an accepted connection
            deadline = time.monotonic() + 5
            while not uv.server_state.connections and time.monotonic() < deadline:
                time.sleep(0.01)
            return [
                conn.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for conn in list(uv.server_state.connections)
            ]
    finally:
        server.close()


def test_the_rest_servers_connections_have_nodelay(tmp_path: Path) -> None:
    flags = _accepted_nodelay(tmp_path)
    assert flags and all(flags), flags


def test_control_a_proto_zero_listener_leaves_nagle_on(tmp_path: Path, monkeypatch) -> None:
    def bare(host: str, port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: the old bench's socket
        s.bind((host, port))
        s.listen()
        s.setblocking(False)
        return s

    monkeypatch.setattr(listen, "tcp_listener", bare)
    flags = _accepted_nodelay(tmp_path)
    assert flags and not any(flags), flags


def test_serves_listener_gives_nodelay_too() -> None:
    """`stockade serve` binds through `bind_listener`; its socket must say TCP like the bench's."""
    from host.cli.serve_cmd import bind_listener

    sock = bind_listener("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_the_fronts_listener_still_says_tcp() -> None:
    """The REST front serves on the host's listener, rebuilt from its descriptor
    (`socket.socket(fileno=...)` in `host/server/front_proc.py`): it must come back saying TCP, or
    asyncio leaves Nagle on for every connection the front accepts."""
    sock = listen.tcp_listener("127.0.0.1", 0)
    try:
        rebuilt = socket.socket(fileno=os.dup(sock.fileno()))
        try:
            assert rebuilt.proto == socket.IPPROTO_TCP
        finally:
            rebuilt.close()
    finally:
        sock.close()
