"""Listening sockets for the product's HTTP servers (the REST API, the bench's REST server).

Why this exists: asyncio sets TCP_NODELAY on an accepted connection only when the listening
socket says it is TCP (`proto == IPPROTO_TCP`); a socket made with `socket.socket(AF_INET,
SOCK_STREAM)` says proto 0, so its connections keep Nagle's algorithm. uvicorn writes a
response's head and body separately, and the second write then waits for the client's delayed
ACK: about 40 ms per request instead of well under one. Every socket the product listens on is
made here, so none can miss it (`tests/server/test_server_listen.py`).
"""
from __future__ import annotations

import socket

# Pending connections the kernel queues before accept (uvicorn's own default).
BACKLOG = 2048


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
