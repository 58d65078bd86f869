"""An app author's attempts to make the host's outbound HTTP (`host.bridges.httpout`) do more
than its one decided request, against real loopback servers:

- a header the wire cannot carry as given (a name that is no token, a control character in a
  value) is refused before any connection is made, so the unit is refunded (`GateError.sent`
  false) and the server behind the URL never sees a raw control byte.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from host.bridges.httpout import HttpOut
from host.errors import GateError


class Counting:
    """A loopback server that records each connection's request head and answers `answer`."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(2.0)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.heads.append(data)
                    conn.sendall(self.answer)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture()
def out() -> Iterator[HttpOut]:
    o = HttpOut(deadline_s=1.0)
    yield o
    o.close()


@pytest.mark.parametrize("headers", [
    {"X Api": "k"}, {"X-Api:": "k"}, {"X-Api\t": "k"}, {"": "k"},
    {"X-Api": "a\x01b"}, {"X-Api": "a\x7f"}, {"X-Api": "a\x0bb"}, {"X-Api": "a\x0cb"},
])
def test_a_header_the_wire_cannot_carry_is_refused_before_connecting(
        out: HttpOut, headers: dict[str, str]) -> None:
    server = Counting(OK)
    try:
        with pytest.raises(GateError) as refused:
            out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/",
                               "headers": headers}, lambda _url: ["127.0.0.1"])
        assert refused.value.code == "invalid_argument"
        # nothing went out: the gate refunds the unit (before: kept, or the byte was sent)
        assert not refused.value.sent
        time.sleep(0.1)
        assert server.connections == 0 and server.heads == []
    finally:
        server.close()


def test_a_tab_in_a_header_value_still_goes_out(out: HttpOut) -> None:
    server = Counting(OK)
    try:
        got = out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/",
                                 "headers": {"X-Api": "a\tb"}}, lambda _url: ["127.0.0.1"])
        assert got["status"] == 200 and b"\r\nX-Api: a\tb\r\n" in server.heads[0]
    finally:
        server.close()
