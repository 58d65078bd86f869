"""A running child's token expires (its `exp`, or a forward step of the host clock past it):
the serving host starts the child again with a fresh token, as it does for a revoked token or a
retired key. Before, nothing renewed it: the gate refused every call of the app ("this session's
token expired; the app restarts with a fresh one") and no restart ever came.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servedhelp import event, serve_one, until
from servedhelp import runner as runner_of

from host.clock import SystemClock
from host.errors import GateError
from host.keys.tokens import DEFAULT_TTL_S
from host.runtime import Host


class SteppedClock(SystemClock):
    """The system clock, stepped forward by hand (an NTP step, or a day of uptime)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset






@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[SteppedClock, Host]]:
    clock = SteppedClock()
    _home, host = serve_one(tmp_path, "exp", ["users.read", "livechat.read"], clock=clock)
    yield clock, host
    host.stop()


def _fresh(host: Host, clock: SteppedClock) -> bool:
    r = runner_of(host)
    return r is not None and r.session is not None and r.state != "starting" \
        and r.session.claims.exp > clock.now()


def test_an_expired_token_is_renewed_by_a_restart(served) -> None:  # type: ignore[no-untyped-def]
    clock, host = served
    until(lambda: _fresh(host, clock), "the app to run")
    runner = runner_of(host)
    assert runner is not None and runner.session is not None
    old = runner.session.claims.jti
    clock.offset = DEFAULT_TTL_S + 60  # past the token's exp
    until(lambda: event(host) and _fresh(host, clock), "a fresh token after expiry")
    runner = runner_of(host)
    assert runner is not None and runner.session is not None
    assert runner.session.claims.jti != old
    try:  # the renewed session's calls are decided again, not refused as expired
        host.gate.handle(runner.session, "users.get_by_username", {"username": "nobody-here"})
    except GateError as exc:
        assert "expired" not in str(exc), exc
