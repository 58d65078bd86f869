"""The widget's rate limit counts a route however its path is spelled (`host/server/rest.py`).

The dispatcher routes by the normal form of the path (`normalize_route`: leading slashes and
one `api/v1/` dropped), so `/api/v1//livechat/visitor` and `/api/v1/api/v1/livechat/visitor`
register a visitor as `/api/v1/livechat/visitor` does. The limiter looked at the path as sent:
it counted only a path starting `livechat/`, so an anonymous client past its limit registered
as many visitors as it sent by adding a slash. Real HTTP on loopback."""
from __future__ import annotations

from pathlib import Path

import httpx

from host.clock import SystemClock
from host.server.embedded import EmbeddedServer
from host.server.listen import serving

# Spellings of the widget's routes the dispatcher serves as the plain ones.
ALIASES = ("/api/v1//livechat/visitor", "/api/v1///livechat/visitor",
           "/api/v1/api/v1/livechat/visitor", "/api/v1//api/v1/livechat/visitor",
           "/api/v1/livechat%2Fvisitor")


def test_a_respelled_widget_route_counts_against_the_same_limit(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    # 12 calls a minute: one registration a minute per client.
    with serving(server, widget_rate=12) as (base, _srv, _uv), \
            httpx.Client(base_url=base, timeout=10, trust_env=False) as web:
        first = web.post("/api/v1/livechat/visitor",
                         json={"visitor": {"token": "widget-0", "name": "v0"}})
        assert first.status_code == 200, first.text
        answers = {path: web.post(path, json={"visitor": {"token": f"widget-{i + 1}",
                                                          "name": f"v{i + 1}"}}).status_code
                   for i, path in enumerate(ALIASES)}
        # Before: 200 for each respelled path, a visitor registered past the limit each time.
        assert answers == dict.fromkeys(ALIASES, 429), answers
        # The widget's reads count too (12 a minute with the calls above): before, none did.
        reads = [web.get("/api/v1//livechat/visitor/widget-0").status_code for _ in range(15)]
        assert reads[0] == 200 and reads[-1] == 429, reads
    with server.db.read() as c:
        assert c.execute("SELECT COUNT(*) FROM visitors").fetchone()[0] == 1


def test_the_respelled_paths_reach_the_widget_route(tmp_path: Path) -> None:
    """The control: with no limit each spelling registers a visitor, so the refusals above are
    the limiter's, not a 404."""
    server = EmbeddedServer(tmp_path / "server.db", SystemClock())
    with serving(server, widget_rate=0) as (base, _srv, _uv), \
            httpx.Client(base_url=base, timeout=10, trust_env=False) as web:
        for i, path in enumerate(ALIASES):
            r = web.post(path, json={"visitor": {"token": f"widget-{i}", "name": f"v{i}"}})
            assert r.status_code == 200, (path, r.text)
