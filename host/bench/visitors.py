"""The load bench's visitors: conversations through the REST API, from one thread.

`stockade bench --load` measures the host, and the visitors share its two cores: whatever they
spend is taken from the host under test. They used to be 24 threads of `httpx` clients, ~5 ms
of CPU a conversation (a seventh of the machine's at 20/s), most of it the client library and
the threads handing one interpreter lock around. Here one event loop drives every conversation
over a small pool of keep-alive HTTP/1.1 connections, written and parsed by hand: the requests
the host sees are the same (method, path, query, JSON body, headers), only cheaper to make.

The parser is strict about what it accepts, because a bench that misreads an answer measures
nothing: a status line, headers, and a body of exactly `Content-Length` bytes (the REST API
always sends one). Anything else fails the request.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode, urlsplit

# Open connections at most (each keeps alive): the old client's thread count, so the server
# sees the same concurrency when the host falls behind.
CONNECTIONS = 24
# A head longer than this is not the REST API's answer.
MAX_HEAD_BYTES = 16 * 1024
TIMEOUT_S = 30.0


class HttpError(Exception):
    """An answer the visitors could not read (the request counts as failed)."""


class Connection:
    """One keep-alive HTTP/1.1 connection to the REST API."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self._reader, self._writer, self._host = reader, writer, host

    async def request(self, method: str, path: str, body: dict[str, Any] | None,
                      headers: dict[str, str]) -> tuple[int, Any]:
        """(status, decoded JSON body)."""
        if method == "GET" and body:
            path = f"{path}?{urlencode(body)}"
            body = None
        payload = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", "Connection: keep-alive",
                f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        head += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        if len(raw) > MAX_HEAD_BYTES:
            raise HttpError("answer head too long")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        length: int | None = None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == "content-length":
                length = int(value.strip())
            elif sep and name.strip().lower() == "transfer-encoding":
                raise HttpError("a chunked answer (the REST API sends Content-Length)")
        if length is None:
            raise HttpError("an answer without Content-Length")
        data = await self._reader.readexactly(length)
        return int(parts[1]), json.loads(data) if data else None

    def close(self) -> None:
        self._writer.close()


class Pool:
    """At most `size` connections, reused; one that failed is dropped, not reused. An idle
    connection the server closed (uvicorn's keep-alive timeout is 5 s) fails the request before
    any byte of an answer: that request is sent again on the next connection."""

    def __init__(self, base: str, size: int = CONNECTIONS) -> None:
        url = urlsplit(base)
        if url.scheme != "http" or url.hostname is None or url.port is None:
            raise ValueError(f"the visitors need http://host:port, not {base!r}")
        self._host, self._port = url.hostname, url.port
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(size)

    async def request(self, method: str, path: str, body: dict[str, Any] | None,
                      headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self._slots:
            while self._idle:
                try:
                    return await self._send(self._idle.pop(), method, path, body, headers)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                        raise
                    # The server had closed this idle connection (its keep-alive timeout):
                    # nothing of the request was answered. Another connection sends it, as
                    # every keep-alive client does.
            return await self._send(await self._open(), method, path, body, headers)

    async def _send(self, conn: Connection, method: str, path: str,
                    body: dict[str, Any] | None, headers: dict[str, str] | None,
                    ) -> tuple[int, Any]:
        try:
            answer = await asyncio.wait_for(
                conn.request(method, path, body, headers or {}), TIMEOUT_S)
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        return answer

    async def _open(self) -> Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return Connection(reader, writer, f"{self._host}:{self._port}")

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


Conversation = Callable[[Pool, int], Coroutine[Any, Any, None]]


async def paced(base: str, rate: float, count: int, first: int,
                conversation: Conversation) -> float:
    """Start conversation `first + k` at `k / rate` seconds for k < count, each as its own
    task; returns the seconds from the first start until the last one finished."""
    pool = Pool(base)
    tasks: list[asyncio.Task[None]] = []
    t0 = time.monotonic()
    try:
        for k in range(count):
            wait = t0 + k / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(conversation(pool, first + k)))
        await asyncio.gather(*tasks)
        return time.monotonic() - t0
    finally:
        pool.close()
