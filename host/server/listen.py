"""Listening sockets for the product's HTTP servers (the REST API, the bench's REST server),
and `serving`: the REST API served from a thread of this process (the demo, the benches).

Why this exists: asyncio sets TCP_NODELAY on an accepted connection only when the listening
socket says it is TCP (`proto == IPPROTO_TCP`); a socket made with `socket.socket(AF_INET,
SOCK_STREAM)` says proto 0, so its connections keep Nagle's algorithm. uvicorn writes a
response's head and body separately, and the second write then waits for the client's delayed
ACK: about 40 ms per request instead of well under one. Every socket the product listens on is
made here, so none can miss it (`tests/server/test_server_listen.py`).
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn
    from starlette.routing import BaseRoute

    from host.server.embedded import EmbeddedServer

# Pending connections the kernel queues before accept (uvicorn's own default).
BACKLOG = 2048
# How long `serving` waits for its uvicorn server to say it started.
SERVER_START_TIMEOUT_S = 10.0


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket whose accepted connections asyncio sets TCP_NODELAY on.

    Raises OSError (e.g. EADDRINUSE) before anything is served, so a caller can report a busy
    port as the operator's input error.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _canon, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@contextmanager
def serving(server: EmbeddedServer, mounts: Sequence[BaseRoute] = (),
            ) -> Iterator[tuple[str, EmbeddedServer, uvicorn.Server]]:
    """Serve `server`'s REST API (and `mounts` beside it, e.g. the console) on loopback from a
    thread; yield (base URL, server, the uvicorn server)."""
    import uvicorn  # the web stack only for what serves HTTP

    from host.server.rest import create_app

    sock = tcp_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(server, mounts=mounts), log_level="warning",
                                       lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name="stockade-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the REST API's uvicorn server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server, uv
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()
