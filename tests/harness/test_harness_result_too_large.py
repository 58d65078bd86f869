"""A handler's result too large for its frame is the handler's error, in the host and the harness.

A handler returning more than a frame holds (twenty 60 KB strings: each value within the caps,
1.2 MB in all) passed its harness test; in the host the child could not encode its Done frame,
left its loop and exited, and the operator read "child exited with code 0", which says nothing
of the app's mistake, while its event failed and the app restarted. Both now refuse the result
as the handler's `app_error`, naming its size and the cap (`sandbox.wirecaps.MAX_RESULT_BYTES`).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from harness_helpers import write_app as write_harness_app

from host.home import Home
from host.runtime import Host, HostConfig
from sandbox.harness import AppHarness, HarnessError

SOURCE = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        if event.get("n") is None:
            return ["x" * 60000] * 20
        return "small"
'''
POLICY = '''
schema = 1
name = "big"
[[rule]]
id = "big"
effect = "permit"
apps = ["big"]
actions = ["livechat.read"]
'''


def test_the_host_names_a_result_too_large_as_the_handlers_error(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "big", POLICY)
    install(home, write_app(tmp_path / "apps", "big", ["livechat.read"],
                            ["livechat.room_started"], SOURCE))
    with Host(home, config=HostConfig(watch=False)) as host:
        runner = next(iter(host.runners.values()))
        with pytest.raises(Exception, match=r"over the \d+ bytes a result may hold"):
            runner.submit("livechat.room_started", {}, 10).result(20)
        assert runner.submit("livechat.room_started", {"n": 1}, 10).result(20) == "small"
        assert runner.restarts == 0  # the child lived on: the app's mistake, not a crash
    notes = [ln for p in home.logs_dir.glob("*.log") for ln in p.read_text().splitlines()]
    assert any("handler livechat.room_started failed: app_error" in n and "1200" in n
               for n in notes), notes


def test_the_harness_refuses_it_too(tmp_path: Path) -> None:
    h = AppHarness.from_dir(write_harness_app(tmp_path, source=SOURCE.replace(
        "TestApp", "Probe")))
    with pytest.raises(HarnessError, match=r"over the \d+ bytes a result may hold"):
        h.fire("livechat.room_started", {})
