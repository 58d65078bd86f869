"""A workspace (or whatever sits in front of it) that answers without end: an endless body, or
one trickled a few bytes at a time so that no single read waits past the read timeout.

The client read the whole body into memory before comparing it to `MAX_RESPONSE_BYTES`, and
`deadline_s` was checked only between attempts: an endless body grew the host's memory until the
workspace stopped, and a trickle held the app's call (and a pool connection) for as long as the
workspace liked. A real socket server, so httpx's own reading is what is tested; no timed
assertion decides the outcome of the size case, and the trickle case has a 10x margin."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from host.server.errors import Unavailable
from host.server.remote.client import MAX_RESPONSE_BYTES, RcClient

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")


class Server:
    """One-connection HTTP server that answers with `body_chunks()`; counts bytes it got out."""

    def __init__(self, chunk: bytes, count: int, pause_s: float, *,
                 in_headers: bool = False) -> None:
        self.chunk, self.count, self.pause_s = chunk, count, pause_s
        self.in_headers = in_headers  # trickle a header's value, not the body
        self.sent = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        try:
            conn.recv(65536)
            if self.in_headers:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                frame = self.chunk
            else:
                conn.sendall(HEAD + b"1\r\n{\r\n")
                frame = b"%x\r\n%s\r\n" % (len(self.chunk), self.chunk)
            for _ in range(self.count):
                if self.stop.is_set():
                    break
                conn.sendall(frame)
                self.sent += len(self.chunk)
                if self.pause_s:
                    time.sleep(self.pause_s)
        except OSError:
            pass  # the client hung up: what the test wants
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(10)


@pytest.fixture()
def endless() -> Iterator[Server]:
    # 64 MiB in 64 KiB chunks as fast as the client reads.
    s = Server(b" " * 65536, 1024, 0.0)
    yield s
    s.close()


@pytest.fixture()
def trickle() -> Iterator[Server]:
    # One byte every 50 ms for up to 20 s: no read waits long, the answer never ends.
    s = Server(b" ", 400, 0.05)
    yield s
    s.close()


@pytest.fixture()
def slow_headers() -> Iterator[Server]:
    # The status line, then one header byte every 50 ms for up to 20 s (h11 waits for 100 KiB).
    s = Server(b"x", 400, 0.05, in_headers=True)
    yield s
    s.close()


def test_an_endless_answer_is_cut_at_the_size_cap(endless: Server) -> None:
    c = RcClient(endless.url, "u", "t", sleep=lambda _s: None, retries=0, timeout_s=10,
                 deadline_s=60)
    with pytest.raises(Unavailable, match="more than"):
        c.call("GET", "users.list", idempotent=True)
    c.close()
    # The client stopped reading near the cap (socket buffers hold a few MiB more at most).
    assert endless.sent < MAX_RESPONSE_BYTES + 16 * 1024 * 1024


def test_a_trickled_answer_is_cut_at_the_call_deadline(trickle: Server) -> None:
    c = RcClient(trickle.url, "u", "t", sleep=lambda _s: None, retries=0, timeout_s=1.0,
                 deadline_s=1.0)
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        c.call("POST", "users.create", body={}, idempotent=False)
    took = time.monotonic() - started
    c.close()
    assert took < 10.0, f"the call took {took:.1f} s against a 1 s deadline"
    assert err.value.outcome_unknown  # sent, answer never whole: it may have applied


def test_trickled_headers_are_cut_at_the_call_deadline(slow_headers: Server) -> None:
    c = RcClient(slow_headers.url, "u", "t", sleep=lambda _s: None, retries=0, timeout_s=1.0,
                 deadline_s=1.0)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        c.call("GET", "users.info", idempotent=True)
    took = time.monotonic() - started
    c.close()
    assert took < 10.0, f"the call took {took:.1f} s against a 1 s deadline"
