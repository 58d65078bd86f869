"""A workspace that pages `users.list` for ever, each page slowly: one app's `users.find_by_field`
must still end within the call's deadline, as every other bridge call does.

The search reads up to `MAX_SCAN_PAGES` (50) pages and `MAX_VERIFY` (20) users one by one, each
request cut at the client's deadline on its own, so a workspace answering every page just inside
that deadline held one bridge call — and the app's runner thread, which waits on it — for minutes
(50 x 4.5 s), long after the app's event deadline had killed its child. A real loopback HTTP
server and the real `RcClient`: the deadline is the socket-level one that is tested."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from host.clock import SystemClock
from host.home import Home
from host.server.errors import Unavailable
from host.server.principals import Caller
from host.server.remote.client import RcClient
from host.server.remote.server import RemoteServer

PAGE_DELAY_S = 0.1  # each page well inside the client's per-request timeout


class _Pages(BaseHTTPRequestHandler):
    """users.list: 100 users a page, none matching, a total that never ends; users.info: a user
    with no custom field. Every answer after PAGE_DELAY_S."""

    def do_GET(self) -> None:  # http.server calls it by this name
        time.sleep(PAGE_DELAY_S)
        self.server.hits += 1  # type: ignore[attr-defined]
        if self.path.startswith("/api/v1/users.list"):
            body = {"success": True, "total": 10**9, "count": 100, "users": [
                {"_id": f"u{i}", "username": f"u{i}", "customFields": {"ext": "no"}}
                for i in range(100)]}
        else:
            body = {"success": True, "user": {"_id": "x", "username": "x"}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture()
def endless_pages() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    srv.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_a_search_through_endless_slow_pages_ends_at_the_call_deadline(
        tmp_path: Path, endless_pages: tuple[str, ThreadingHTTPServer]) -> None:
    url, srv = endless_pages
    client = RcClient(url, "svc", "tok", timeout_s=0.4, deadline_s=0.5, sleep=lambda _s: None)
    rs = RemoteServer(client, Home(tmp_path).ensure().host_store, SystemClock())
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable) as err:
            rs.users_find_by_field(Caller("a", "in-a", "au"), "ext", "yes")
    finally:
        took = time.monotonic() - started
        rs.close()
    # 50 pages at 0.1 s each took over 5 s before; the whole search now shares one 0.5 s
    # deadline (a 4x margin for a loaded machine).
    assert took < 2.0, f"the search took {took:.1f} s against a 0.5 s call deadline"
    assert srv.hits < 15  # type: ignore[attr-defined]
    assert not err.value.outcome_unknown  # a read: nothing was applied
