"""A Content-Length of thousands of digits (zeros, then a small number: the HTTP parser reads
its value, 1, and passes it on) is refused like any other bad length, never a 500: the console
read it with `int()`, which raises past 4300 digits, so the sign-in form (no session needed),
every change and every upload answered 500 and logged a traceback per request."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from conhelp import Served, signed_in

LONG = "0" * 5000 + "1"


@pytest.mark.parametrize("path", ["/console/login", "/console/install",
                                  "/console/apps/x/disable", "/console/updates"])
def test_a_content_length_of_thousands_of_digits_is_refused_not_an_error(
        served: Served, path: str) -> None:
    c = signed_in(served)
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    u = urlsplit(served.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nOrigin: {served.url}\r\n"
                      f"Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      f"Content-Length: {LONG}\r\nConnection: close\r\n\r\nx").encode())
        answer = sock.recv(4096)
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 403 Forbidden", b"HTTP/1.1 413 Request Entity Too Large",
                      b"HTTP/1.1 400 Bad Request"), answer[:300]
