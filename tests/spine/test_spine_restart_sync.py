"""A child restarting while the install watcher syncs: its runner is kept.

A restart mints the new child's token, which revokes the runner's earlier one, and only then,
once the child has shaken hands and loaded, puts the new session on the runner. A sync in that
window found the runner's session revoked and replaced the runner, an app restarted twice for
one crash (seen as `tests/spine/test_spine_affinity.py` failing about one run in thirty: the
runner it held was stopped under it). The sync here runs at that moment on purpose.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def test_a_sync_while_a_child_restarts_keeps_its_runner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "restarts", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        runner = next(iter(host.runners.values()))
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        first = runner.child
        assert first is not None
        real_record = host.credentials.record
        synced: list[bool] = []

        def record_then_sync(minted: Any) -> None:
            real_record(minted)  # the runner's earlier token is revoked from here on
            if not synced:
                # The watcher's sync, from its own thread, while this start is under way.
                sync = threading.Thread(target=host.sync_installs, kwargs={"wait_hooks": False})
                sync.start()
                sync.join(10)
                synced.append(not sync.is_alive())

        monkeypatch.setattr(host.credentials, "record", record_then_sync)
        first.kill("the test restarts it", code="test")
        assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
        assert synced == [True]
        assert next(iter(host.runners.values())) is runner, "the runner was replaced"
        assert runner.child is not None and runner.child is not first
        assert not runner.child.dead
