"""The webhook receiver's log lines under a flood and an outage, as an operator meets them: the
real receiver over loopback, the real stand-in process.

Before: each refused delivery wrote its own warning line — a sender without the secret (the
receiver's URL is reachable through the operator's TLS proxy) posting as fast as it could wrote
one line per request to the host's log; and while the workspace could not be read (a 503 storm,
a restart) the worker wrote a full traceback on every pass, about one a second for as long as
the outage lasted. Now each kind of line is written at most once per `LOG_EVERY_S`, saying how
many were held back, and a workspace that cannot be read is one line without a traceback; the
counts stay exact (`refused`), and the webhook waiting in the inbox is delivered once the
workspace answers."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hookhelp import Rig

from host.server.events import ROOM_STARTED
from host.server.remote import webhook

LOGGER = "stockade.rocketchat.webhook"


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path).start()
    try:
        yield r
    finally:
        r.stop()


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def test_a_flood_without_the_secret_writes_a_bounded_number_of_lines(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    body = b'{"type": "LivechatSession", "_id": "r1"}'
    with httpx.Client(timeout=10) as c:
        codes = {c.post(rig.hook_url, content=body,
                        headers={webhook.TOKEN_HEADER: "not-the-secret-0123456789"}).status_code
                 for _ in range(300)}
    assert codes == {401}
    assert rig.receiver.refused["token"] == 300  # every one still counted
    assert len(_lines(caplog)) <= 2, [r.getMessage() for r in _lines(caplog)]


def test_a_workspace_down_for_a_while_is_one_line_not_a_traceback_a_second(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    s = rig.standin
    s.fault("rooms.info", "status", 503, times=1_000_000)  # the workspace cannot read rooms
    a = s.admin("POST", "users.create", json={"username": "out-ag", "name": "Ag"})
    s.admin("POST", "livechat/users/agent", json={"username": "out-ag"})
    s.admin("POST", "livechat/agent.status", json={"agentId": a["user"]["_id"],
                                                   "status": "available"})
    token = "outage-visitor-0123456789"
    httpx.post(f"{s.url}/api/v1/livechat/visitor", json={"visitor": {"token": token}})
    rid = httpx.get(f"{s.url}/api/v1/livechat/room", params={"token": token}
                    ).json()["room"]["_id"]
    time.sleep(4.0)  # several of the worker's passes meet the outage
    s.clear_faults()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            n == ROOM_STARTED and p["room"]["id"] == rid for n, p in rig.events):
        time.sleep(0.05)
    assert [p["room"]["id"] for n, p in rig.events if n == ROOM_STARTED] == [rid]
    lines = _lines(caplog)
    assert not [r for r in lines if r.exc_info], "a traceback for a workspace that is down"
    assert len(lines) <= 3, [r.getMessage() for r in lines]
