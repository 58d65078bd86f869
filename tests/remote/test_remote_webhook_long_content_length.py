"""A webhook whose Content-Length is thousands of digits is refused as too large, never a 500.

The receiver read the header with `int()` after `isdigit()`: past 4300 digits `int()` raises,
and the HTTP parser passes on thousands of leading zeros before a small number (it reads the
value, 1). With the webhook secret, every such request answered 500 and logged a traceback (the
console had the same fault, `tests/console/test_console_long_content_length.py`).
"""
from __future__ import annotations

import socket

from rchelp import SECRET
from test_remote_webhook_attacks import served  # noqa: F401 - the fixture

from host.server.remote import webhook
from host.server.remote.receiver import PATH, WebhookReceiver

LONG = "0" * 5000 + "1"


def test_a_content_length_of_thousands_of_digits_is_refused_not_an_error(
        served: tuple[WebhookReceiver, int]) -> None:  # noqa: F811 - the fixture
    rec, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"{webhook.TOKEN_HEADER}: {SECRET}\r\nContent-Length: {LONG}\r\n"
                  "Connection: close\r\n\r\nx".encode())
        answer = s.recv(4096)
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 413 Request Entity Too Large", b"HTTP/1.1 400 Bad Request"), \
        answer[:300]
    assert rec.refused["size"] == 1
