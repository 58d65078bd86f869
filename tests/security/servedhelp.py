"""A serving host with one trivial app, for the token tests that watch its child start again:
the app, the host, and waiting for what the host's watcher does (each test asks its own
question of the running session)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import AppRunner

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def serve_one(tmp_path: Path, app_id: str, perms: list[str] | None = None,
              **host_args: Any) -> tuple[Home, Host]:
    """A home with `app_id` installed (`SRC`) and a host serving it (started: stop it)."""
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", app_id, perms or ["livechat.read"],
                            ["livechat.room_started"], SRC))
    return home, Host(home, config=HostConfig(event_deadline_s=5.0), **host_args).start()


def until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def runner(host: Host) -> AppRunner | None:
    return next(iter(host.runners.values()), None)


def event(host: Host) -> bool:
    """One event answered by the app (False while its child is being stopped or started)."""
    r = runner(host)
    if r is None:
        return False
    try:
        return r.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
    except Exception:  # an event to a child that is being stopped
        return False
