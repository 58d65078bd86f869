"""A running child's token expires (its `exp`, or a forward step of the host clock past it):
the serving host starts the child again with a fresh token, as it does for a revoked token or a
retired key. Before, nothing renewed it: the gate refused every call of the app ("this session's
token expired; the app restarts with a fresh one") and no restart ever came.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.keys.tokens import DEFAULT_TTL_S
from host.runtime import Host, HostConfig
from host.supervise.supervisor import AppRunner

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


class SteppedClock(SystemClock):
    """The system clock, stepped forward by hand (an NTP step, or a day of uptime)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def _until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[SteppedClock, Host]]:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "exp", ["users.read", "livechat.read"],
                            ["livechat.room_started"], SRC))
    clock = SteppedClock()
    host = Host(home, clock=clock, config=HostConfig(event_deadline_s=5.0)).start()
    yield clock, host
    host.stop()


def _runner(host: Host) -> AppRunner | None:
    return next(iter(host.runners.values()), None)


def _event(host: Host) -> bool:
    """Deliver an event (a runner stopped for renewal starts its child on the next one)."""
    r = _runner(host)
    if r is None:
        return False
    try:
        return r.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
    except Exception:  # an event to a child that is being stopped
        return False


def _fresh(host: Host, clock: SteppedClock) -> bool:
    r = _runner(host)
    return r is not None and r.session is not None and r.state != "starting" \
        and r.session.claims.exp > clock.now()


def test_an_expired_token_is_renewed_by_a_restart(served) -> None:  # type: ignore[no-untyped-def]
    clock, host = served
    _until(lambda: _fresh(host, clock), "the app to run")
    runner = _runner(host)
    assert runner is not None and runner.session is not None
    old = runner.session.claims.jti
    clock.offset = DEFAULT_TTL_S + 60  # past the token's exp
    _until(lambda: _event(host) and _fresh(host, clock), "a fresh token after expiry")
    runner = _runner(host)
    assert runner is not None and runner.session is not None
    assert runner.session.claims.jti != old
    try:  # the renewed session's calls are decided again, not refused as expired
        host.gate.handle(runner.session, "users.get_by_username", {"username": "nobody-here"})
    except GateError as exc:
        assert "expired" not in str(exc), exc
