"""The load bench's visitors' HTTP client (`host/bench/visitors.py`) against a real loopback
server: the requests it sends, keep-alive reuse, and the answers it must refuse to read (a
bench that misread an answer would count a failure as a conversation)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from host.bench import visitors

Reply = Callable[[bytes], bytes]


def _json_reply(head: bytes) -> bytes:
    body = json.dumps({"echo": head.decode("latin-1").split("\r\n")[0]}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def _serve(reply: Reply, requests: list[bytes], connections: list[int],
                 close_after: int | None = None) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            for _ in range(close_after or 1 << 30):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                requests.append(head + await reader.readexactly(length))
                writer.write(reply(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()  # after `close_after` answers: as a keep-alive timeout closes it
    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(reply: Reply, calls: Callable[[visitors.Pool], Any],
         close_after: int | None = None) -> tuple[Any, list[bytes], int]:
    requests: list[bytes] = []
    connections: list[int] = []

    async def main() -> Any:
        server = await _serve(reply, requests, connections, close_after)
        port = server.sockets[0].getsockname()[1]
        pool = visitors.Pool(f"http://127.0.0.1:{port}", size=2)
        try:
            return await calls(pool)
        finally:
            pool.close()
            server.close()
    return asyncio.run(main()), requests, len(connections)


def test_requests_are_well_formed_and_connections_are_kept_alive() -> None:
    async def calls(pool: visitors.Pool) -> list[tuple[int, Any]]:
        out = [await pool.request("POST", "/api/v1/x", {"a": 1}, {"X-User-Id": "u1"})]
        out.append(await pool.request("GET", "/api/v1/room", {"token": "t k", "d": "S"}))
        return out
    answers, requests, opened = _run(_json_reply, calls)
    assert answers == [(200, {"echo": "POST /api/v1/x HTTP/1.1"}),
                       (200, {"echo": "GET /api/v1/room?token=t+k&d=S HTTP/1.1"})]
    post = requests[0]
    assert b"\r\nContent-Type: application/json\r\n" in post
    assert b"\r\nX-User-Id: u1\r\n" in post and post.endswith(b'\r\n\r\n{"a": 1}')
    assert b"Content-Length: 0\r\n" in requests[1]  # a GET's query carries its fields
    assert opened == 1  # the second request reused the first one's connection


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n{}",  # no Content-Length
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"SMTP ready\r\n\r\n",
])
def test_an_answer_it_cannot_read_exactly_is_an_error(answer: bytes) -> None:
    async def calls(pool: visitors.Pool) -> None:
        await pool.request("POST", "/api/v1/x", {}, None)
    with pytest.raises(visitors.HttpError):
        _run(lambda head: answer, calls)


def test_a_failed_connection_is_not_reused() -> None:
    answers = iter([b"HTTP/1.1 200 OK\r\n\r\n", _json_reply(b"GET / HTTP/1.1\r\n")])

    async def calls(pool: visitors.Pool) -> tuple[int, Any]:
        with pytest.raises(visitors.HttpError):
            await pool.request("GET", "/", None)
        return await pool.request("GET", "/", None)
    answer, _requests, opened = _run(lambda head: next(answers), calls)
    assert answer == (200, {"echo": "GET / HTTP/1.1"}) and opened == 2


def test_only_plain_http_with_a_port_is_accepted() -> None:
    for base in ("https://127.0.0.1:1", "http://127.0.0.1", "127.0.0.1:80"):
        with pytest.raises(ValueError):
            visitors.Pool(base)


def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    """uvicorn closes a keep-alive connection idle for 5 s: the next request must not fail for
    it, whether the close arrived before the request went out or as it did."""
    async def calls(pool: visitors.Pool) -> list[tuple[int, Any]]:
        out = [await pool.request("GET", "/a", None)]
        await asyncio.sleep(0.05)  # the server's close arrives while the connection is idle
        out.append(await pool.request("GET", "/b", None))
        return out
    answers, requests, opened = _run(_json_reply, calls, close_after=1)
    assert [a[1]["echo"] for a in answers] == ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]
    assert opened == 2 and len(requests) == 2

    async def racing(pool: visitors.Pool) -> tuple[int, Any]:
        await pool.request("GET", "/a", None)
        return await pool.request("GET", "/b", None)  # sent before the close is seen
    answer, requests, opened = _run(_json_reply, racing, close_after=1)
    assert answer == (200, {"echo": "GET /b HTTP/1.1"}) and opened == 2


def test_an_answer_cut_short_is_an_error_not_retried() -> None:
    async def calls(pool: visitors.Pool) -> None:
        await pool.request("GET", "/", None)
    with pytest.raises(asyncio.IncompleteReadError):
        _run(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", calls,
             close_after=1)
