"""A busy workspace's burst: hundreds of webhooks in a few seconds, sent many at once as
Rocket.Chat sends them (each on its own; the stand-in's `--webhook-concurrency`), to the host's
real receiver over loopback, with forged deliveries mixed in and the inbox kept small so the
receiver answers 503 part of the time (the workspace retries): every room's start, assignment
and message reaches the event bus exactly once, no forged body is taken, nothing is left."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hookhelp import Rig
from rchelp import Standin

from host.server.events import AGENT_ASSIGNED, MESSAGE_SENT, ROOM_STARTED
from host.server.remote import receiver as receiver_mod
from host.server.remote import webhook

ROOMS = 60  # each: Chat Start, Chat Taken, 3 visitor messages = 5 webhooks (300 in all)
MESSAGES = 3
FORGED = 40


@pytest.fixture()
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    # A small inbox: the burst meets the receiver's 503 (backpressure), as a long one would
    # meet MAX_INBOX.
    monkeypatch.setattr(receiver_mod, "MAX_INBOX", 25)
    # Retries 0.2 s apart, enough of them to outlast the 503s of a full inbox; sent 32 at once.
    r = Rig(tmp_path, retries=100, concurrency=32).start()
    try:
        yield r
    finally:
        r.stop()


def _agent(s: Standin) -> tuple[str, str]:
    a = s.admin("POST", "users.create", json={"username": "burst-agent", "name": "Ag"})
    aid = a["user"]["_id"]
    s.admin("POST", "livechat/users/agent", json={"username": "burst-agent"})
    s.admin("POST", "livechat/agent.status", json={"agentId": aid, "status": "available"})
    dep = s.admin("POST", "livechat/department", json={
        "department": {"name": "burst"}, "agents": [{"agentId": aid}]})
    return aid, str(dep["department"]["_id"])


def _conversation(url: str, dep: str, i: int) -> tuple[str, list[str]]:
    token = f"burst-visitor-{i:04d}-0123456789"
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as c:
        c.post("livechat/visitor", json={"visitor": {"token": token, "name": f"V{i}"}})
        rid = str(c.get("livechat/room", params={"token": token, "department": dep}
                        ).json()["room"]["_id"])
        ids = [str(c.post("livechat/message", json={"token": token, "rid": rid,
                                                     "msg": f"m{i}-{k}"}).json()["message"]["_id"])
               for k in range(MESSAGES)]
    return rid, ids


def test_a_burst_reaches_the_apps_each_event_once_and_forgeries_never(rig: Rig) -> None:
    _aid, dep = _agent(rig.standin)
    forged = webhook.build(webhook.CHAT_START, {"_id": "forged-room", "t": "l", "open": True,
                                                "v": {"_id": "x", "token": "t"}},
                           {"_id": "x", "token": "t", "name": "X"}, None, [])
    codes: list[int] = []

    def forge(i: int) -> None:
        r = httpx.post(rig.hook_url, json=forged, timeout=30,
                       headers={webhook.TOKEN_HEADER: f"wrong-secret-{i:04d}-0123456789"})
        codes.append(r.status_code)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        forgeries = [pool.submit(forge, i) for i in range(FORGED)]
        made = list(pool.map(lambda i: _conversation(rig.standin.url, dep, i), range(ROOMS)))
        for f in forgeries:
            f.result()
    made_in = time.monotonic() - started
    status = rig.settle(90.0, calm_for=3, poll_s=0.1)

    assert codes == [401] * FORGED and rig.receiver.refused["token"] == FORGED
    assert status["webhooks_pending"] == 0 and status["failed"] == 0, status
    assert status["sent"] >= ROOMS * (2 + MESSAGES), status
    assert rig.receiver.refused["full"] > 0, "the burst never met the inbox's bound"
    assert rig.rs.owned.inbox_size() == 0

    rooms = {rid for rid, _ in made}
    messages = [m for _, ids in made for m in ids]
    with rig._lock:
        events = list(rig.events)
    starts = Counter(str(p["room"]["id"]) for n, p in events if n == ROOM_STARTED)
    assert set(starts) == rooms and set(starts.values()) == {1}
    said = Counter(str(p["message"]["id"]) for n, p in events if n == MESSAGE_SENT)
    assert set(said) == set(messages) and set(said.values()) == {1}
    assigned = Counter(str(p["room"]["id"]) for n, p in events if n == AGENT_ASSIGNED)
    served = {rid for rid in rooms
              if (rig.standin.admin("GET", "rooms.info", params={"roomId": rid})["room"]
                  .get("servedBy") or {}).get("_id")}
    assert set(assigned) == served and set(assigned.values()) <= {1}
    assert made_in < 60  # a burst: hundreds of webhooks within seconds, not a trickle
