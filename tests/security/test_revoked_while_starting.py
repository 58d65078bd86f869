"""A token revoked while its child is still starting (its handshake under way) is not left
running: the sync that sees the revocation skips a runner that is starting, and before, nothing
looked again (no install change, no key change), so the child ran on with a token the registry
says is revoked for good. Now the watcher checks each new session once it is up, as it does for
a token signed by a key retired meanwhile.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app

from host.home import Home
from host.keys.registry import TokenRegistry
from host.runtime import Host, HostConfig
from host.supervise.child import Child
from host.supervise.supervisor import AppRunner

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
    install(home, write_app(tmp_path / "apps", "rv", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    host = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    yield home, host
    host.stop()


def _runner(host: Host) -> AppRunner | None:
    return next(iter(host.runners.values()), None)


def _event(host: Host) -> bool:
    r = _runner(host)
    if r is None:
        return False
    try:
        return r.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
    except Exception:  # an event to a child that is being stopped
        return False


def test_a_token_revoked_during_its_start_does_not_run_on(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    _until(lambda: _event(host), "the app to run")
    registry = TokenRegistry(home.host_store)  # another process's connection
    real = Child.handshake
    revoked: list[str] = []

    def revoked_meanwhile(self: Child, *a: Any, **kw: Any) -> Any:
        layers = real(self, *a, **kw)
        if not revoked:  # once: the start after it is an honest one
            runner = _runner(host)
            assert runner is not None
            revoked.extend(registry.revoke(runner.install_id, time.time(), "test: revoked"))
            time.sleep(1.0)  # the watcher's sync sees it now, while this start is under way
        return layers

    monkeypatch.setattr(Child, "handshake", revoked_meanwhile)
    runner = _runner(host)
    assert runner is not None and runner.child is not None
    runner.child.kill("test: start again", code="stopped")
    runner._next_start = 0.0  # past the restart backoff
    _until(lambda: _event(host) and revoked, "the start that sees its token revoked")

    def renewed() -> bool:
        r = _runner(host)
        return _event(host) and r is not None and r.session is not None \
            and r.state != "starting" and not registry.is_revoked(r.session.claims.jti)

    try:
        _until(renewed, "a child holding a token that is not revoked", timeout=8.0)
    finally:
        registry.close()
