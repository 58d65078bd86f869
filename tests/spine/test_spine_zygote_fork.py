"""What the zygote's raw fork(2) must still do that Python's `os.fork()` hooks did.

The zygote forks app children with the C library's fork (`sandbox.zygote`, module docstring),
which skips the interpreter's at-fork hooks. The one hook whose effect an app can see is the
re-seed of `random`: without it every child would start from the zygote's generator state,
and any two apps would draw the same "random" numbers.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig

APPS = ("red", "green", "blue")
STARTED = "livechat.room_started"

POLICY = '''
schema = 1
name = "draws"
[[rule]]
id = "draws-read"
effect = "permit"
apps = ["red", "green", "blue"]
actions = ["livechat.read"]
'''

SRC = '''
import random
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return [random.random() for _ in range(4)]
'''


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[Host]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "draws", POLICY)
    for app_id in APPS:
        install(home, write_app(tmp_path / "apps", app_id, ["livechat.read"], [STARTED],
                                SRC))
    h = Host(home, config=HostConfig(use_zygote=True, event_deadline_s=5.0)).start()
    try:
        yield h
    finally:
        h.stop()


def test_apps_forked_from_one_zygote_draw_different_random_numbers(host: Host) -> None:
    draws = host.dispatch(STARTED, {"n": 1}).results()
    assert len(draws) == len(APPS)
    firsts = [tuple(d) for d in draws]
    assert len(set(firsts)) == len(APPS), firsts

