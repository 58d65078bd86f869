"""The chat widget's public REST routes are rate-limited per client, an IPv4 address or an IPv6
/64 (`host.server.ratelimit`, `serve --widget-rate`), as Rocket.Chat's API rate limiter limits
its own.

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
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.listen import serving
from host.server.personal_tokens import ensure_service_user


def _register(web: httpx.Client, name: str, *forwarded: str) -> httpx.Response:
    """A visitor registration carrying `forwarded` as X-Forwarded-For lines (none: no header)."""
    return web.post("/api/v1/livechat/visitor",
                    headers=[("X-Forwarded-For", line) for line in forwarded],
                    json={"visitor": {"token": f"widget-{name}", "name": name}})


def _as(web: httpx.Client, name: str, *forwarded: str) -> int:
    return _register(web, name, *forwarded).status_code


def _client(base: str, address: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=base, timeout=10, trust_env=False,
                        transport=httpx.HTTPTransport(local_address=address))


def test_one_address_registers_ten_visitors_a_minute(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    admin, token = ensure_service_user(server, "staff")
    with serving(server) as (base, _srv, _uv), _client(base) as web, \
            _client(base, "127.0.0.2") as other:
        # Each names another X-Forwarded-For address: no proxy is trusted by default, so the
        # header escapes nothing.
        answers = [_register(web, f"v{i}", f"198.51.100.{i}").status_code for i in range(11)]
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
    """`serve --widget-rate` and `--trusted-proxy` reach the REST front process (the default
    path) over its link."""
    home = Home(tmp_path / "home").ensure()
    with serve_process(home, "--widget-rate", "12", "--trusted-proxy", "127.0.0.2",
                       "--no-apps") as (_proc, port), \
            _client(f"http://127.0.0.1:{port}") as web, \
            _client(f"http://127.0.0.1:{port}", "127.0.0.2") as proxy:
        answers = [_register(web, f"v{i}", f"203.0.113.{i}").status_code for i in range(2)]
        assert answers == [200, 429], answers  # 12 a minute: one registration a minute
        # Behind the trusted proxy each visitor has its own limit.
        answers = [_register(proxy, f"w{i}", f"203.0.113.{i}").status_code for i in range(2)]
        assert answers == [200, 200], answers
        assert _register(proxy, "w2", "203.0.113.1").status_code == 429


def test_forwarded_addresses_from_an_untrusted_peer_share_its_one_limit(tmp_path: Path) -> None:
    """The guard: a client naming a new X-Forwarded-For address on each call escapes nothing
    when its peer is not a proxy the operator trusts (`serve --trusted-proxy`; with none
    trusted, `test_one_address_registers_ten_visitors_a_minute`)."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    with serving(server, widget_rate=12, trusted_proxies=["127.0.0.2"]) as (base, _srv, _uv), \
            _client(base) as web:  # 12 a minute: one registration a minute per client
        answers = [_as(web, f"s{i}", f"203.0.113.{i}") for i in range(5)]
        assert answers == [200] + [429] * 4, answers


def test_behind_a_trusted_proxy_each_visitor_has_its_own_limit(tmp_path: Path) -> None:
    """`serve --trusted-proxy 127.0.0.1`: the proxy's appended address is the client. Before,
    every visitor behind the proxy shared its one limit (the second visitor's first call a
    429)."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())

    async def whoami(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.client.host if request.client else "")

    with serving(server, [Route("/whoami", whoami)], widget_rate=12,
                 trusted_proxies=["127.0.0.1"]) as (base, _srv, _uv), _client(base) as proxy:
        # The request's client is the TCP peer whatever the header says: what the console's
        # peer check reads (host.console.peer) is never renamed by a forwarded address.
        seen = proxy.get("/whoami", headers={"X-Forwarded-For": "203.0.113.1"})
        assert seen.text == "127.0.0.1"
        assert _as(proxy, "a1", "203.0.113.1") == 200
        assert _as(proxy, "b1", "203.0.113.2") == 200  # another visitor: its own limit
        assert _as(proxy, "a2", "203.0.113.1") == 429
        # Visitor a writes entries of its own left of the one its proxy appends: still a.
        assert _as(proxy, "a3", "198.51.100.7, 192.0.2.9, 203.0.113.1") == 429
        assert _as(proxy, "a4", "198.51.100.8", "203.0.113.1") == 429
        # No header, or none the walk can read: the proxy's own address, one limit.
        assert _as(proxy, "p1") == 200
        for i, bad in enumerate(["unknown", "fe80::1%1", "203.0.113.9:80", "x" * 8000,
                                 ", ".join(["127.0.0.1"] * 20)]):
            assert _as(proxy, f"p{i + 2}", bad) == 429, bad


def test_an_ipv6_visitor_rotating_addresses_in_its_64_has_one_limit(tmp_path: Path) -> None:
    """The attack: an IPv6 client is handed a whole /64 (SLAAC, privacy addresses) and sends
    each call from another of its addresses, here as the visitor a trusted proxy forwards
    (loopback is the only real peer here). Before: each address its own key, every
    registration a 200 (the limit did not hold for IPv6 at all). Now the /64 is the client;
    another /64 and an IPv4 visitor keep their own limits."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    with serving(server, widget_rate=12, trusted_proxies=["127.0.0.1"]) as (base, _srv, _uv), \
            _client(base) as proxy:  # 12 a minute: one registration a minute per client
        answers = [_as(proxy, f"r{i}", f"2001:db8:1:2:{i:x}:{i * 31:x}:beef:{i + 1:x}")
                   for i in range(8)]
        assert answers == [200] + [429] * 7, answers
        assert _as(proxy, "s0", "2001:db8:1:3::1") == 200  # another /64: its own limit
        assert _as(proxy, "s1", "2001:db8:1:3:ffff::2") == 429
        assert _as(proxy, "t0", "203.0.113.5") == 200  # IPv4: per address, as before
        assert _as(proxy, "t1", "203.0.113.6") == 200
        assert _as(proxy, "t2", "::ffff:203.0.113.5") == 429  # mapped: the same IPv4 client
