"""Every HTTP server the product runs caps a request's header block (host/server/listen.py).

uvicorn's httptools protocol kept every byte of the request line and the headers until the blank
line came, with no cap and no time limit: one connection, with no credentials, could grow the
server's memory without bound (400 MiB of one header grew it by 470 MB), and a header block
never finished held its connection forever. What must hold: a header block (request line, URL,
headers; a chunked body's trailers too) over 64 KiB or over 100 headers is answered 431 and its
connection closed, on every listener (the REST front, the REST API in serve's own process, the
in-thread server); a header block not finished in time is answered 408 and closed; a normal
request, a keep-alive client and a body sent with its head are untouched.
"""
from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from servehelp import REPO, serving

from host.clock import SystemClock
from host.home import Home
from host.server import listen
from host.server.embedded import EmbeddedServer
from host.server.front import RestFront
from host.server.listen import tcp_listener

# The caps as documented (SECURITY.md): written out, so a change to them is a change here too.
HEAD_CAP = 64 * 1024
HEADER_COUNT_CAP = 100
READ_WAIT_S = 5.0


def _pad_header(total: int) -> bytes:
    """A header block of exactly `total` bytes, one header value long, not finished."""
    start = b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    return start + b"a" * (total - len(start))


def _long_url(total: int) -> bytes:
    """A request line of exactly `total` bytes, its URL long, not finished."""
    start = b"GET /api/v1/info?pad="
    return start + b"a" * (total - len(start))


def _many_headers(count: int) -> bytes:
    """A finished header block, small, with `count` headers (the last asks for a close)."""
    lines = [b"GET /api/v1/info HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [b"X-H%d: v" % i for i in range(count - 2)]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _finished(total: int) -> bytes:
    """A finished header block of exactly `total` bytes (one padded header)."""
    end = b"\r\nConnection: close\r\n\r\n"
    return _pad_header(total - len(end)) + end


def _read_answer(s: socket.socket, wait_s: float = READ_WAIT_S) -> bytes:
    """Everything the server says until it closes; AssertionError if it keeps the connection
    open longer than `wait_s`."""
    s.settimeout(wait_s)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server neither answered nor closed in {wait_s:g} s "
                             f"(said so far: {out[:80]!r})") from None
    return out


def _status(answer: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert m, f"no HTTP answer: {answer[:120]!r}"
    return int(m.group(1))


def _ask(port: int, data: bytes, wait_s: float = READ_WAIT_S) -> bytes:
    """`data` on a fresh connection; the server's whole answer, up to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(data)
        return _read_answer(s, wait_s)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@contextmanager
def _in_thread(tmp_path: Path) -> Iterator[int]:
    """The REST API served from a thread of this process (`listen.serving`)."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    try:
        with listen.serving(server) as (base, _server, _uv):
            yield _port(base)
    finally:
        server.close()


OVER_THE_CAP = {
    "one long header": _pad_header(HEAD_CAP + 1),
    "a long URL": _long_url(HEAD_CAP + 1),
    "too many headers": _many_headers(HEADER_COUNT_CAP + 1),
}


@pytest.mark.parametrize("kind", sorted(OVER_THE_CAP))
def test_a_header_block_over_the_cap_is_answered_431_and_closed(tmp_path: Path,
                                                                kind: str) -> None:
    with _in_thread(tmp_path) as port:
        answer = _ask(port, OVER_THE_CAP[kind])
        assert _status(answer) == 431, answer[:200]
        assert b"connection: close" in answer.lower()
        # The server still serves, and a header block at the caps is a normal request.
        assert _status(_ask(port, _finished(HEAD_CAP))) == 200
        assert _status(_ask(port, _many_headers(HEADER_COUNT_CAP))) == 200


def test_each_request_on_a_kept_alive_connection_gets_the_whole_cap(tmp_path: Path) -> None:
    """The cap is per header block: 40 requests of 4 KiB heads on one connection (160 KiB in
    all) are all served."""
    with _in_thread(tmp_path) as port, httpx.Client(timeout=10) as c:
        for i in range(40):
            r = c.get(f"http://127.0.0.1:{port}/api/v1/info", headers={"X-Pad": "b" * 4096})
            assert r.status_code == 200, (i, r.status_code)


def test_a_body_sent_with_its_head_is_not_counted_as_head(tmp_path: Path) -> None:
    """A head of 60 KiB and a body of 60 KiB in one write: the head is under the cap, and the
    body is the body cap's business, not the header cap's."""
    body = b'{"user": "' + b"u" * (60 * 1024) + b'", "password": "p"}'
    end = (b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
           b"Connection: close\r\n\r\n" % len(body))
    start = b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    head = start + b"a" * (60 * 1024 - len(start) - len(end)) + end
    with _in_thread(tmp_path) as port:
        status = _status(_ask(port, head + body))
        assert status not in (400, 431), status


def test_a_header_block_not_finished_in_time_is_answered_408(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection is held by a header block that never ends (nor by one that never starts)."""
    monkeypatch.setattr(listen, "HEAD_TIMEOUT_S", 0.5, raising=False)
    with _in_thread(tmp_path) as port:
        t0 = time.monotonic()
        answer = _ask(port, b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert _status(answer) == 408, answer[:200]
        assert time.monotonic() - t0 < 3.0
        with socket.create_connection(("127.0.0.1", port)) as idle:
            assert _read_answer(idle) == b""  # closed without a word: it asked nothing
        assert _status(_ask(port, _finished(1024))) == 200


def _stream(port: int, start: bytes, limit: int = 32 << 20,
            before_reading: Callable[[int], None] = lambda sent: None) -> tuple[int, bytes]:
    """`start`, then 1 MiB writes of b"a" until the server speaks or closes (or `limit` bytes
    went): (bytes sent after `start`, the server's answer). `before_reading(sent)` runs with the
    connection still open."""
    chunk, sent = b"a" * (1 << 20), 0
    with socket.create_connection(("127.0.0.1", port), timeout=READ_WAIT_S) as s:
        s.sendall(start)
        # poll(), not select(): a worker that ran many tests may hand out descriptors past 1,024.
        spoke = select.poll()
        spoke.register(s, select.POLLIN)
        while sent < limit:
            if spoke.poll(0):
                break  # the server spoke (or closed): stop sending
            try:
                s.sendall(chunk)
            except OSError:
                break  # it closed while we sent
            sent += len(chunk)
        before_reading(sent)
        return sent, _read_answer(s)


CHUNKED = (b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n")


def test_a_chunked_bodys_trailers_are_capped_like_headers(tmp_path: Path) -> None:
    """Trailers (header lines after a chunked body's last chunk) are kept by the parser like
    headers: the same cap holds for them."""
    with _in_thread(tmp_path) as port:
        sent, answer = _stream(port, CHUNKED + b"X-Trailer: ")
        assert _status(answer) == 431, (sent, answer[:200])
        assert sent < 16 << 20
        small = _ask(port, CHUNKED + b"X-Trailer: t\r\n\r\n")
        assert _status(small) != 431 and b'"success":false' in small, small[:300]


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_huge_header_block_does_not_grow_the_fronts_memory(tmp_path: Path) -> None:
    """The attack itself, on the REST front as `serve` runs it: 32 MiB of one header value is
    refused at the cap (431, closed), and the front's peak memory grows by a few MiB at most."""
    home = Home(tmp_path / "home").ensure()
    sock = tcp_listener("127.0.0.1", 0)
    front = RestFront(home, sock).start()
    try:
        port = sock.getsockname()[1]
        assert front.pid is not None
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/info", timeout=10).status_code == 200
        pid, before = front.pid, _peak_rss_kb(front.pid)

        def no_growth(sent: int) -> None:
            grew_kb = _peak_rss_kb(pid) - before
            assert grew_kb < 8 * 1024, f"the front grew by {grew_kb} kB for {sent >> 20} MiB sent"

        _sent, answer = _stream(port, _pad_header(1024), before_reading=no_growth)
        assert answer == b"" or _status(answer) == 431, answer[:200]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/info", timeout=10).status_code == 200
    finally:
        front.stop()
        sock.close()


@pytest.mark.parametrize("where", ["--rest-process", "--rest-in-host"])
def test_serve_caps_the_header_block_wherever_it_serves(tmp_path: Path, where: str) -> None:
    """`stockade serve` as an operator runs it: the REST API and the console beside it, in the
    front or in serve's own process."""
    home = Home(tmp_path / "home").ensure()
    with serving(home, "--no-apps", where) as (_proc, port):
        deadline = time.monotonic() + 30
        while True:  # the front may still be starting
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/info", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve never answered"
                time.sleep(0.1)
        for data in (_pad_header(HEAD_CAP + 1), _many_headers(HEADER_COUNT_CAP + 1)):
            assert _status(_ask(port, data)) == 431
        console = _finished(1024).replace(b"/api/v1/info", b"/console/login")
        assert _status(_ask(port, console)) == 200
        assert _status(_ask(port, console.replace(b"X-Pad: a", b"X-Pad: " + b"a" * HEAD_CAP,
                                                  1))) == 431


# Files under host/ that build a uvicorn server not through `listen.http_config`, and why.
NOT_CAPPED_HERE = {
    # A demo's stand-in for a third party's CRM: not a Stockade listener.
    "host/demo/crm.py": "the demo's fake CRM",
    # The demo's webhook receiver, on loopback for the length of the demo.
    "host/demo/remote.py": "the demo",
    # A stand-in Rocket.Chat workspace for tests and the demo: it plays the other side.
    "host/cli/standin_cmd.py": "the Rocket.Chat stand-in",
}
def _raw_configs() -> list[str]:
    root = Path(REPO)
    return sorted(str(p.relative_to(root)) for p in (root / "host").rglob("*.py")
                  if p.name != "listen.py" and "uvicorn.Config(" in p.read_text())


def test_every_product_http_server_is_built_with_the_caps() -> None:
    raw = set(_raw_configs()) - set(NOT_CAPPED_HERE)
    assert not raw, f"build these servers with host.server.listen.http_config: {sorted(raw)}"
