"""A session's idle clock runs on the operator's own use only. Another local account that
holds the cookie (a browser sends it to every loopback port, `host.console.peer`) is refused
as signed out; its refused requests must not count as use either, or replaying the cookie
every few minutes keeps a session the operator left open past `IDLE_S` (the guard for a
browser left signed in on a shared desk) until its 8-hour age."""
from __future__ import annotations

import anyio
import pytest
from starlette.requests import Request

from host.clock import ManualClock
from host.console import faults, signin
from host.console.sessions import COOKIE, IDLE_S, Sessions
from host.console.signin import SignIn
from host.server.shapes import User

OPERATOR_UID, OTHER_UID = 1000, 1001


class _Operators:
    """One operator, "u1", always still an admin under credential "cred"."""

    def current(self, user_id: str) -> User | None:
        return {"id": user_id} if user_id == "u1" else None  # type: ignore[typeddict-item]

    def credential(self, user_id: str) -> str | None:
        return "cred"


def _request(sid: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/console/apps",
                    "headers": [(b"cookie", f"{COOKIE}={sid}".encode())],
                    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)})


def test_another_accounts_refused_replays_do_not_keep_a_session_alive(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    sessions = Sessions(clock)
    door = SignIn(_Operators(), sessions, (), faults.console_threads(),  # type: ignore[arg-type]
                  page=lambda *a, **k: None)  # type: ignore[arg-type,return-value]
    sid = sessions.open("u1", "operator", "cred", OPERATOR_UID)
    peer = {"uid": OPERATOR_UID}
    monkeypatch.setattr(signin, "peer_uid", lambda request: peer["uid"])

    async def seen_as(uid: int) -> bool:
        peer["uid"] = uid
        return await door.session_of(_request(sid)) is not None

    async def run() -> None:
        assert await seen_as(OPERATOR_UID)  # the operator's own use
        peer["uid"] = OTHER_UID
        for _ in range(4):  # the other account replays the cookie every half idle period
            clock.advance(IDLE_S / 2)
            assert not await seen_as(OTHER_UID)
        # the operator has not used it for twice IDLE_S: it ended
        assert not await seen_as(OPERATOR_UID)

    anyio.run(run)


def test_the_operators_own_use_keeps_it_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    sessions = Sessions(clock)
    door = SignIn(_Operators(), sessions, (), faults.console_threads(),  # type: ignore[arg-type]
                  page=lambda *a, **k: None)  # type: ignore[arg-type,return-value]
    sid = sessions.open("u1", "operator", "cred", OPERATOR_UID)
    monkeypatch.setattr(signin, "peer_uid", lambda request: OPERATOR_UID)

    async def run() -> None:
        for _ in range(4):
            clock.advance(IDLE_S / 2)
            assert await door.session_of(_request(sid)) is not None

    anyio.run(run)
