"""The serving host applies install changes while the chat server cannot answer whether an
app's own user is active (`Unavailable`: a remote workspace down or slow). Before, that
question raised out of every sync, so a disable, a revoked token or a retired key stopped no
running child until the server answered again.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.errors import Unavailable

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def _until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "down", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    host = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    yield home, host
    host.stop()


def test_a_disable_stops_the_child_while_the_server_cannot_answer(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    _until(lambda: any(r.session is not None for r in host.runners.values()), "the app to run")

    def down(*_a: Any, **_kw: Any) -> Any:
        raise Unavailable("the workspace does not answer")

    monkeypatch.setattr(host.credentials.server, "users_get", down)
    store = InstallStore(home.host_store)  # another process's connection
    rec = store.by_app("down")
    assert rec is not None
    store.set_enabled(rec.install_id, False, reason="test")
    store.close()
    _until(lambda: not host.runners, "the disabled app's child to stop")
