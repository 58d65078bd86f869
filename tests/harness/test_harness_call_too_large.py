"""A bridge call whose arguments do not fit a frame is the app's InvalidArgument, in both.

Each value within the caps, twenty 60 KB header values make an `http.request` of 1.2 MB: the
child could not encode its Call frame and the app got the wire's own `FrameError`, an
exception no `except StockadeError` catches, and the harness sent the request to its responder.
Both now refuse it as `InvalidArgument` naming the size, before anything is sent.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from harness_helpers import write_app as write_harness_app

from host.home import Home
from host.runtime import Host, HostConfig
from sandbox.errors import InvalidArgument
from sandbox.harness import AppHarness

SOURCE = '''
from stockade import App, InvalidArgument

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        headers = {"X-" + str(i): "v" * 60000 for i in range(20)}
        try:
            ctx.http.get("https://crm.example.com/x", headers=headers)
        except InvalidArgument as exc:
            return "refused: " + exc.message
        return "sent"
'''
POLICY = '''
schema = 1
name = "big"
[[rule]]
id = "big"
effect = "permit"
apps = ["big"]
actions = ["livechat.read", "http"]
[rule.when]
domains = ["crm.example.com"]
'''


def test_the_child_refuses_it_as_invalid_argument(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "big", POLICY)
    install(home, write_app(tmp_path / "apps", "big", ["livechat.read", "http"],
                            ["livechat.room_started"], SOURCE))
    with Host(home, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        said = runner.submit("livechat.room_started", {}, 10).result(20)
    assert said.startswith("refused: http.request: arguments too large"), said


def test_the_harness_refuses_it_too(tmp_path: Path) -> None:
    h = AppHarness.from_dir(write_harness_app(tmp_path, source=SOURCE.replace(
        "TestApp", "Probe"), permissions=("livechat.read", "http")))
    h.http_responder = lambda *_: (200, "ok")
    assert h.fire("livechat.room_started", {}).startswith(
        "refused: http.request: arguments too large")
    assert h.http_requests == []
    with pytest.raises(InvalidArgument, match="arguments too large"):
        h.ctx.http.get("https://crm.example.com/x", {f"X-{i}": "v" * 60000 for i in range(20)})
