"""The author harness refuses the outbound HTTP requests the host refuses, with its words.

The harness checked only the method (against a short list of its own) and the URL's scheme,
then handed anything to the test's responder. An app that set `Content-Length` or `Host`
itself, or put a visitor's name with an accent in a header, passed its tests and was refused
by the host ("header 'Content-Length' is not allowed") on every request in production; a body
that was not text (a dict meant as JSON) reached the responder in tests and was sent with no
body at all by the host, silently; `OPTIONS` worked in production and was refused by the
harness. Both now decide with one copy of the rules (`policies.httprules`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness_helpers import write_app

from host.bridges.httpout import perform
from host.errors import GateError
from sandbox.errors import InvalidArgument
from sandbox.harness import AppHarness

SOURCE = '''
from stockade import App
class Probe(App):
    def on_livechat_room_started(self, ctx, event):
        a = event["visitor"]["custom_fields"]
        return ctx.http.request(a["method"], "https://crm.example.com/x",
                                headers=a["headers"], body=a["body"])
'''

CASES: dict[str, tuple[str, dict[str, Any], Any]] = {
    "content-length": ("POST", {"Content-Length": "5"}, "hello"),
    "host": ("GET", {"Host": "other.example.com"}, None),
    "accented value": ("GET", {"X-Visitor": "Zo\u00eb"}, None),
    "control in value": ("GET", {"X-Id": "a\x01b"}, None),
    "space in name": ("GET", {"X Id": "1"}, None),
    "too many": ("GET", {f"X-{i}": "v" for i in range(51)}, None),
    "body not text": ("POST", {}, {"a": 1}),
    "method with a space": ("GET /", {}, None),
    "options": ("OPTIONS", {}, None),
    "accept-encoding dropped": ("GET", {"Accept-Encoding": "gzip", "X-Api-Key": "k"}, None),
}


def _host(method: str, headers: dict[str, Any], body: Any) -> str:
    """What the host's outbound HTTP makes of the request: the refusal, or "sent"."""
    def no_address(url: str) -> list[str]:
        raise GateError("invalid_argument", "sent")  # past every check: would go out
    try:
        perform({"method": method, "url": "https://crm.example.com/x", "headers": headers,
                 "body": body}, no_address)
    except GateError as exc:
        return exc.message
    raise AssertionError("unreachable")


def _harness(tmp_path: Path, method: str, headers: dict[str, Any], body: Any) -> str:
    h = AppHarness.from_dir(write_app(tmp_path, source=SOURCE,
                                      permissions=("livechat.read", "http")))
    h.http_responder = lambda *_: (200, "ok")
    visitor = h.add_visitor(name="Ann")
    # The request's parts reach the handler as event data (any JSON value).
    visitor_fields = {"method": method, "headers": headers, "body": body}
    started = h.start_room(visitor["id"])
    started["visitor"]["custom_fields"] = visitor_fields
    try:
        h.fire("livechat.room_started", started)
    except InvalidArgument as exc:
        return exc.message
    return "sent"


@pytest.mark.parametrize("case", list(CASES))
def test_the_harness_decides_a_request_as_the_host_does(tmp_path: Path, case: str) -> None:
    method, headers, body = CASES[case]
    assert _harness(tmp_path, method, headers, body) == _host(method, headers, body)


def test_the_host_refuses_a_body_that_is_not_text() -> None:
    """It sent the request with no body at all: the app's dict never arrived, and it was told
    nothing (DESIGN rule 3: never a silent loss)."""
    assert _host("POST", {}, {"a": 1}).startswith("body must be text")


def test_the_harness_records_the_headers_the_host_sends(tmp_path: Path) -> None:
    method, headers, body = CASES["accept-encoding dropped"]
    h = AppHarness.from_dir(write_app(tmp_path, source=SOURCE,
                                      permissions=("livechat.read", "http")))
    seen: list[dict[str, str]] = []
    h.http_responder = lambda m, u, hd, b: (seen.append(hd), (200, "ok"))[1]
    started = h.start_room(h.add_visitor(name="Ann")["id"])
    started["visitor"]["custom_fields"] = {"method": method, "headers": headers, "body": body}
    h.fire("livechat.room_started", started)
    assert seen == [{"X-Api-Key": "k"}] and h.http_requests[0]["headers"] == {"X-Api-Key": "k"}
