"""The harness hands an app an HTTP response shaped as the host hands it one.

The host gives an app a response's headers with lower-cased names, a repeated name's values
joined, at most 50 names and each value cut at 1 KiB (`host.bridges.httpout`), and refuses a
body over 1 MiB. The harness passed the test's responder headers through as written: an app
reading `resp["headers"]["Content-Type"]` passed its test against a responder that said
`Content-Type`, and raised KeyError on every real response (`content-type`). The shaping is one
copy now (`policies.httprules.app_headers`), applied by both.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from harness_helpers import write_app

from host.bridges.httpout import _response_headers
from sandbox.errors import InvalidArgument
from sandbox.harness import AppHarness

SOURCE = '''
from stockade import App
class Probe(App):
    def on_livechat_room_started(self, ctx, event):
        return ctx.http.get("https://crm.example.com/x")
'''
SENT = [("Content-Type", "application/json"), ("X-Long", "v" * 2000)] + \
    [(f"X-{i}", "1") for i in range(60)]


def _harness(tmp_path: Path) -> AppHarness:
    return AppHarness.from_dir(write_app(tmp_path, source=SOURCE,
                                         permissions=("livechat.read", "http")))


def test_response_headers_reach_the_app_as_the_host_shapes_them(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    h.http_responder = lambda *_: (200, "{}", dict(SENT))
    got = h.fire("livechat.room_started", {})["headers"]
    host = _response_headers([(k.encode(), v.encode()) for k, v in SENT])
    assert got == host
    assert "content-type" in got and "Content-Type" not in got and len(got["x-long"]) == 1024


def test_a_body_over_the_hosts_cap_is_refused(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    h.http_responder = lambda *_: (200, "x" * ((1 << 20) + 1))
    with pytest.raises(InvalidArgument, match=r"response larger than 1048576 bytes"):
        h.fire("livechat.room_started", {})
