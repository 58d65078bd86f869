"""The chat widget's public REST routes are rate-limited per client address
(`host.server.ratelimit`, `serve --widget-rate`), as Rocket.Chat's API rate limiter limits its own.

Anyone who reaches the server may call them without a staff credential, and each call can write
(a visitor's row kept for good, a room, a message) and wake every app that handles the event it
fires. Before, nothing stood between one client and as many as it could send: 50 visitor
registrations from one address in a second were 50 rows. Real HTTP on loopback; a second client
address is 127.0.0.2 (the whole 127/8 is this machine's)."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
from servehelp import serving as serve_process

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.listen import serving
from host.server.personal_tokens import ensure_service_user


def _register(web: httpx.Client, name: str) -> httpx.Response:
    return web.post("/api/v1/livechat/visitor",
                    json={"visitor": {"token": f"widget-{name}", "name": name}})


def _client(base: str, address: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=base, timeout=10, trust_env=False,
                        transport=httpx.HTTPTransport(local_address=address))


def test_one_address_registers_ten_visitors_a_minute(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    admin, token = ensure_service_user(server, "staff")
    with serving(server) as (base, _srv, _uv), _client(base) as web, \
            _client(base, "127.0.0.2") as other:
        answers = [_register(web, f"v{i}").status_code for i in range(11)]
        # Before: eleven 200s (and as many more as a client sent).
        assert answers == [200] * 10 + [429], answers
        refused = _register(web, "v-more")
        assert refused.status_code == 429
        doc = refused.json()
        assert doc["success"] is False and doc["errorType"] == "error-too-many-requests"
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 6 and f"wait {wait} seconds" in doc["error"]
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert int(refused.headers["x-ratelimit-reset"]) > time.time() * 1000
        # Another address is another client; staff routes and `info` are not the widget's.
        assert _register(other, "w0").status_code == 200
        assert web.get("/api/v1/info").status_code == 200
        staff = web.get("/api/v1/livechat/users/agent",
                        headers={"X-User-Id": admin["id"], "X-Auth-Token": token})
        assert staff.status_code == 200, staff.text
        assert web.get("/api/v1/livechat/visitor/widget-v0").status_code == 200  # the widget's reads go on


def test_every_widget_route_counts_against_one_rate(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    with serving(server, widget_rate=24) as (base, _srv, _uv), _client(base) as web:
        assert _register(web, "v").status_code == 200
        reads = [web.get("/api/v1/livechat/visitor/widget-v").status_code for _ in range(24)]
        assert reads == [200] * 23 + [429], reads
        assert web.get("/api/v1/livechat/room", params={"token": "widget-v"}).status_code == 429


def test_a_rate_of_0_is_no_limit(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    with serving(server, widget_rate=0) as (base, _srv, _uv), _client(base) as web:
        assert {_register(web, f"v{i}").status_code for i in range(40)} == {200}


def test_serve_limits_through_its_rest_front(tmp_path: Path) -> None:
    """`serve --widget-rate` reaches the REST front process (the default path) over its link."""
    home = Home(tmp_path / "home").ensure()
    with serve_process(home, "--widget-rate", "12", "--no-apps") as (_proc, port), \
            _client(f"http://127.0.0.1:{port}") as web:
        answers = [_register(web, f"v{i}").status_code for i in range(2)]
        assert answers == [200, 429], answers  # 12 a minute: one registration a minute
