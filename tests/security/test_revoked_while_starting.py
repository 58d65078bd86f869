"""A token revoked while its child is still starting (its handshake under way) is not left
running: the sync that sees the revocation skips a runner that is starting, and before, nothing
looked again (no install change, no key change), so the child ran on with a token the registry
says is revoked for good. Now the watcher checks each new session once it is up, as it does for
a token signed by a key retired meanwhile.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servedhelp import event, serve_one, until
from servedhelp import runner as runner_of

from host.home import Home
from host.keys.registry import TokenRegistry
from host.runtime import Host
from host.supervise.child import Child


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home, host = serve_one(tmp_path, "rv")
    yield home, host
    host.stop()


def test_a_token_revoked_during_its_start_does_not_run_on(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    until(lambda: event(host), "the app to run")
    registry = TokenRegistry(home.host_store)  # another process's connection
    real = Child.handshake
    revoked: list[str] = []

    def revoked_meanwhile(self: Child, *a: Any, **kw: Any) -> Any:
        layers = real(self, *a, **kw)
        if not revoked:  # once: the start after it is an honest one
            runner = runner_of(host)
            assert runner is not None
            revoked.extend(registry.revoke(runner.install_id, time.time(), "test: revoked"))
            time.sleep(1.0)  # the watcher's sync sees it now, while this start is under way
        return layers

    monkeypatch.setattr(Child, "handshake", revoked_meanwhile)
    runner = runner_of(host)
    assert runner is not None and runner.child is not None
    runner.child.kill("test: start again", code="stopped")
    runner.deaths.next_start = 0.0  # past the restart backoff
    until(lambda: event(host) and revoked, "the start that sees its token revoked")

    def renewed() -> bool:
        r = runner_of(host)
        return event(host) and r is not None and r.session is not None \
            and r.state != "starting" and not registry.is_revoked(r.session.claims.jti)

    try:
        until(renewed, "a child holding a token that is not revoked", timeout=8.0)
    finally:
        registry.close()
