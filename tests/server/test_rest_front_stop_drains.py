"""A write the REST front commits while it stops still reaches the apps.

When `serve` stops (or restarts a front), the front finishes the requests in flight, as
`serve --rest-in-host` does, and each may commit a write. The host closed its end of the link
outright before the front had finished them, so a write committed in that window was in the
store and its event reached no app (the front's forwarder found the link closed and dropped it).
The host now only stops sending, and reads the front's events until the front has exited."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
from pghelp import until

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.events import GUEST_SAVED
from host.server.front import RestFront
from host.server.listen import tcp_listener


def test_a_write_finished_while_the_front_stops_is_relayed_to_the_host(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())  # the host's side of the store
    seen: list[tuple[str, dict[str, Any]]] = []
    server.subscribe(lambda name, payload: seen.append((name, payload)))
    sock = tcp_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    front = RestFront(home, sock, server=server).start()
    body = json.dumps({"visitor": {"token": "late-visitor-1", "name": "Late"}}).encode()
    late = socket.create_connection(("127.0.0.1", port))
    try:
        # A request in flight: its head and half its body.
        late.sendall(b"POST /api/v1/livechat/visitor HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                     + body[:10])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:  # the front read it
            assert c.get("/api/info").status_code == 200
        assert front.link is not None and front.proc is not None
        stopping = threading.Thread(target=front.stop)
        stopping.start()  # as `serve` does when it is told to stop
        until(lambda: not _answers(port), "the front stopping (taking no new connection)", 10)
        late.sendall(body[10:])  # the rest: the front finishes the request
        late.settimeout(10)
        answer = late.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        stopping.join(20)
        assert not stopping.is_alive()
    finally:
        late.close()
        front.stop()
    assert server.get_visitor_by_token("late-visitor-1")["name"] == "Late"  # committed
    # Before: committed, and no app ever told.
    assert [n for n, _ in seen] == [GUEST_SAVED]


def _answers(port: int) -> bool:
    """Whether the front takes a new connection and answers on it (while it stops, it does not:
    the connection waits in the listener's backlog, which the host holds)."""
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=0.3) as c:
            return c.get("/api/info").status_code == 200
    except httpx.TimeoutException:
        return False
