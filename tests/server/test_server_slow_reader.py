"""A client that asks for a large answer and never reads it must not keep the answer in the
server's memory, nor its connection, for good.

Found attacking the REST front (`serve`'s default): an anonymous visitor's own history
(`livechat/messages.history/{rid}?count=0`, 500 messages of 8 KiB: 4 MiB), asked on a connection
that is never read, stayed in the front's write buffer with its connection for as long as the
client liked (uvicorn writes the whole answer and then waits for the client with no time limit).
50 such connections grew the front by 200 MB and kept it from stopping (killed after
STOP_TIMEOUT_S); MAX_CONNECTIONS of them would hold every slot until they hung up.
`serve --rest-in-host` is the same listener. The
listener now drops a connection whose answer has not moved for SEND_STALL_S, and the
longest-waiting one past MAX_STALLED of them."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from pghelp import until

from host.clock import SystemClock
from host.home import Home
from host.server import listen
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM

TEXT = "x" * 8000
READERS = 20


def _full_room(server: EmbeddedServer) -> tuple[str, str]:
    agent = server.users_create(SYSTEM, "agent-slow", "S", "user")
    server.livechat_add_agent(SYSTEM, agent["id"])
    server.set_agent_status(agent["id"], "available")
    token = "slow-reader-visitor"
    visitor = server.save_visitor(token)
    room = server.visitor_start_room(visitor["id"])
    for _ in range(500):
        server.visitor_send_message(visitor["id"], room["id"], TEXT)
    return token, room["id"]


def _holding(uv: Any) -> int:
    """Connections whose answer sits unsent in the server's own write buffer. One being closed
    counts: a close waits for its buffer to be sent, so uvicorn's keep-alive timeout (5 s),
    which closes a connection whose answer is written, leaves the answer in memory and the
    connection open for as long as its reader does not read."""
    return sum(1 for c in list(uv.server_state.connections)
               if c.transport.get_write_buffer_size() > 0)


def _all_answered(uv: Any) -> bool:
    """Every request answered (each answer written, or dropped with its connection)."""
    return uv.server_state.total_requests >= READERS and all(
        c.cycle is None or c.cycle.response_started for c in list(uv.server_state.connections))


def test_an_answer_nobody_reads_is_dropped_with_its_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listen, "SEND_STALL_S", 0.5)
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    token, rid = _full_room(server)
    ask = (f"GET /api/v1/livechat/messages.history/{rid}?token={token}&count=0 "
           "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
    with listen.serving(server) as (url, _server, uv):
        port = int(url.rsplit(":", 1)[1])
        readers = []
        try:
            for _ in range(READERS):  # clients that ask and never read
                s = socket.create_connection(("127.0.0.1", port))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(ask)
                readers.append(s)
            # The kernel's buffers take part of each answer; the rest waits in the server.
            until(lambda: _holding(uv) > 0, "an answer waiting in the server for its reader", 10)
            # Every answer made (20 of 4 MiB take seconds on a loaded machine: a fixed wait
            # after the first saw the last ones still within their stall allowance) ...
            until(lambda: _all_answered(uv), "every answer made", 30)
            # ... then none waits past SEND_STALL_S for its reader. Before: every one of them
            # still held its answer (4 MiB each) and its connection, for good.
            until(lambda: _holding(uv) == 0, "every answer nobody reads dropped", 10)
        finally:
            for s in readers:
                s.close()



def test_answers_nobody_reads_are_held_for_a_bounded_number_of_connections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within SEND_STALL_S too: a client opening many connections that never read holds at most
    MAX_STALLED answers in the server's memory (the longest-waiting dropped first), not one
    of 4 MiB per connection up to MAX_CONNECTIONS (4 GiB)."""
    monkeypatch.setattr(listen, "MAX_STALLED", 3)
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    token, rid = _full_room(server)
    ask = (f"GET /api/v1/livechat/messages.history/{rid}?token={token}&count=0 "
           "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
    with listen.serving(server) as (url, _server, uv):
        port = int(url.rsplit(":", 1)[1])
        readers = []
        try:
            for _ in range(READERS):
                s = socket.create_connection(("127.0.0.1", port))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(ask)
                readers.append(s)
            until(lambda: _all_answered(uv), "every answer made", 30)
            held = _holding(uv)
            # A reader that reads gets its answer whole.
            with httpx.Client(base_url=url, timeout=20) as c:
                r = c.get(f"/api/v1/livechat/messages.history/{rid}",
                          params={"token": token, "count": "0"})
                assert r.status_code == 200 and len(r.json()["messages"]) == 500
        finally:
            for s in readers:
                s.close()
    # Before: all READERS of them, each with its 4 MiB answer.
    assert 0 < held <= 3, f"{held} connections hold an answer nobody reads"
