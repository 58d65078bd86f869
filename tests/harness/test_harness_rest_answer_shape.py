"""The harness hands an app a `rest.call` answer only in the shape the host answers with.

The host answers `ctx.rest.call` with `{"status": int, "body": {...}}` (`sandbox/api.py`,
`host/gate/restbridge.py`). The harness gave the app whatever the test's `rest_responder`
returned, and its own hint suggested `lambda method, route, body: {...}`: an app reading
`resp["user"]` passed its test against a responder returning the body alone, and raised
KeyError on every real answer (`resp["body"]["user"]`). A responder's answer in any other shape
is now the test's mistake (HarnessError), said with the shape to use.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from harness_helpers import write_app

from sandbox.harness import AppHarness, HarnessError


def _harness(tmp_path: Path) -> AppHarness:
    return AppHarness.from_dir(write_app(tmp_path, permissions=("livechat.read",
                                                                "server.rest")))


@pytest.mark.parametrize("answer", [{"user": {"_id": "u1"}, "success": True},
                                    {"status": "200", "body": {}},
                                    {"status": 200, "body": {}, "extra": 1},
                                    [200, {}]],
                         ids=["body-alone", "status-text", "extra-key", "pair"])
def test_an_answer_the_host_never_gives_is_the_tests_mistake(tmp_path: Path,
                                                             answer: object) -> None:
    h = _harness(tmp_path)
    h.rest_responder = lambda method, route, body: answer
    with pytest.raises(HarnessError, match=r"\{'status': <int>, 'body': <JSON>\}"):
        h.ctx.rest.call("GET", "/api/v1/users.info", {"userId": "u1"})


def test_the_hosts_shape_reaches_the_app(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    h.rest_responder = lambda method, route, body: {"status": 200, "body": {"success": True}}
    assert h.ctx.rest.call("GET", "/api/v1/info") == {"status": 200, "body": {"success": True}}


def test_the_hint_without_a_responder_shows_the_shape(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"'status': 200, 'body'"):
        _harness(tmp_path).ctx.rest.call("GET", "/api/v1/info")
