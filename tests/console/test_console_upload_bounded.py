"""A package upload is refused by its declared length, before its body is read (DESIGN rule
13): starlette spools a file part to disk with no cap of its own, and the console looked at the
package's size only once the whole body was in, so one upload could fill the host's temporary
disk (the 60 s body timer bounds the time, not the bytes, on loopback) before "larger than"."""
from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest
from conhelp import Served, signed_in

from host.apps.package_rules import MAX_ARCHIVE_BYTES

BOUNDARY = "xyzzy"


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert m is not None, name
    return m.group(1)


@pytest.mark.parametrize("path", ["/console/install", "/console/updates"])
def test_an_upload_past_the_cap_is_refused_before_its_body_is_read(served: Served,
                                                                   path: str) -> None:
    c = signed_in(served)
    csrf = _field(c.get("/console/install").text, "csrf")
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"package\"; "
            f"filename=\"a.zip\"\r\nContent-Type: application/zip\r\n\r\n").encode()
    declared = 1024 * MAX_ARCHIVE_BYTES  # 4 GiB announced; a few bytes sent
    u = urlsplit(served.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nOrigin: {served.url}\r\n"
                      f"Cookie: {cookie}\r\nContent-Type: multipart/form-data; "
                      f"boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n").encode()
                     + head + b"PK" * 1024)
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200] or "no answer: it waits for 4 GiB"
