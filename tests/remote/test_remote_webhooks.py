"""Rocket.Chat's omnichannel webhooks, sent by the stand-in process and received by the host:
the token is checked, oversize and malformed bodies refused, a replay or retry never reaches an
app twice, and what the workspace did becomes Stockade's events (gaps filled from the API)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hookhelp import Rig
from rchelp import SECRET, remote

from host.home import Home
from host.server.principals import SYSTEM
from host.server.remote import rooms, webhook
from host.server.remote.receiver import (
    MAX_BODY_BYTES,
    MAX_HOOK_MESSAGES,
    WebhookReceiver,
)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("hooks")).start()
    try:
        yield r
    finally:
        r.stop()


def _conversation(rig: Rig, tag: str) -> tuple[str, str, str]:
    """An agent and a visitor's room on the workspace, through its REST API."""
    a = rig.standin.admin("POST", "users.create", json={"username": f"ag-{tag}", "name": "Ag"})
    aid = a["user"]["_id"]
    rig.standin.admin("POST", "livechat/users/agent", json={"username": f"ag-{tag}"})
    rig.standin.admin("POST", "livechat/agent.status", json={"agentId": aid,
                                                             "status": "available"})
    dep = rig.standin.admin("POST", "livechat/department", json={
        "department": {"name": f"dep-{tag}"}, "agents": [{"agentId": aid}]})
    httpx.post(f"{rig.standin.url}/api/v1/livechat/visitor",
               json={"visitor": {"token": f"tok-{tag}-0123456789", "name": f"V {tag}"}})
    room = httpx.get(f"{rig.standin.url}/api/v1/livechat/room", params={
        "token": f"tok-{tag}-0123456789", "department": dep["department"]["_id"]}).json()
    return aid, room["room"]["_id"], f"tok-{tag}-0123456789"


def test_a_conversation_becomes_stockades_events_each_once(rig: Rig) -> None:
    rig.events.clear()
    aid, rid, token = _conversation(rig, "c1")
    httpx.post(f"{rig.standin.url}/api/v1/livechat/message",
               json={"token": token, "rid": rid, "msg": "hello"})
    b = rig.standin.admin("POST", "users.create", json={"username": "ag-c1b", "name": "B"})
    rig.standin.admin("POST", "livechat/users/agent", json={"username": "ag-c1b"})
    rig.standin.admin("POST", "livechat/agent.status", json={"agentId": b["user"]["_id"],
                                                             "status": "available"})
    fwd = rig.standin.admin("POST", "livechat/room.forward", json={"roomId": rid,
                                                                   "userId": b["user"]["_id"]})
    assert fwd["success"], fwd
    rig.settle()  # a forward seen before the close (the close alone would hide it)
    rig.standin.admin("POST", "livechat/room.closeByUser", json={"rid": rid})
    rig.settle()
    mine = [(n, p) for n, p in rig.events if p["room"]["id"] == rid]
    assert [n for n, _ in mine] == [
        "livechat.room_started", "livechat.agent_assigned", "message.sent",
        "livechat.agent_unassigned", "livechat.agent_assigned", "livechat.room_transferred",
        "livechat.room_closed"]
    started = dict(mine)["livechat.room_started"]
    assert started["visitor"]["token"] == token  # filled from the API
    unassigned = mine[3][1]
    assert unassigned["agent"]["user_id"] == aid  # no webhook names it: Stockade's record did
    moved = mine[5][1]
    assert moved["from"]["user_id"] == aid and moved["to"]["user_id"] == b["user"]["_id"]
    assert mine[2][1]["message"]["text"] == "hello"
    assert mine[2][1]["message"]["sender"]["type"] == "visitor"
    assert mine[2][1]["message"]["sender"]["name"] == "V c1"  # as the workspace holds it


def _close_body(rig: Rig, rid: str) -> bytes:
    return json.dumps({"type": webhook.CHAT_CLOSE, "_id": rid, "visitor": {},
                       "messages": []}).encode()


def test_a_replayed_or_retried_webhook_never_reaches_an_app_twice(rig: Rig) -> None:
    _aid, rid, _t = _conversation(rig, "c2")
    rig.standin.admin("POST", "livechat/room.closeByUser", json={"rid": rid})
    rig.settle()
    before = rig.names().count("livechat.room_closed")
    body = _close_body(rig, rid)
    first = rig.post(body)
    again = rig.post(body)  # Rocket.Chat's own retry, or an attacker's replay
    other = rig.post(body.replace(b'"messages": []', b'"messages": [], "tags": []'))
    rig.settle()
    assert first.status_code == again.status_code == other.status_code == 200
    assert again.json().get("duplicate") is True
    assert rig.names().count("livechat.room_closed") == before  # the room closed once


def test_a_forged_webhook_is_refused_and_changes_nothing(rig: Rig) -> None:
    _aid, rid, _t = _conversation(rig, "c3")
    rig.settle()
    n = len(rig.events)
    refused = rig.receiver.refused["token"]
    for token in (None, "", "wrong", SECRET[:-1], SECRET + "x"):
        assert rig.post(_close_body(rig, rid), token=token).status_code == 401
    assert rig.receiver.refused["token"] == refused + 5
    # Even a signed webhook is a hint: the room is open on the workspace, so nothing closes.
    assert rig.post(_close_body(rig, rid)).status_code == 200
    rig.settle()
    assert "livechat.room_closed" not in [e for e, _ in rig.events[n:]]


def test_a_signed_message_webhook_invents_no_message(rig: Rig) -> None:
    """A Message webhook's ids are hints: each message is read back from the workspace. An id it
    does not hold (text and sender made up, here the workspace's admin) and an id of another
    room's message become no `message.sent`, though the webhook carries the secret."""
    _aid, rid, _t = _conversation(rig, "fm1")
    _aid2, other, token2 = _conversation(rig, "fm2")
    elsewhere = httpx.post(f"{rig.standin.url}/api/v1/livechat/message", json={
        "token": token2, "rid": other, "msg": "said in the other room"}).json()["message"]
    rig.settle()
    n = len(rig.events)
    body = json.dumps({"type": webhook.MESSAGE, "_id": rid, "visitor": {"name": "x"},
                       "messages": [{"_id": "forged-msg-1", "username": "admin",
                                     "msg": "!refund 10000 to this visitor",
                                     "agentId": rig.standin.user_id},
                                    {"_id": elsewhere["_id"], "username": "v",
                                     "msg": "I agree to cancel my contract"}]}).encode()
    assert rig.post(body).status_code == 200
    rig.settle()
    assert [p for name, p in rig.events[n:] if name == "message.sent"] == []


def test_a_message_is_delivered_as_the_workspace_holds_it(rig: Rig, tmp_path: Path) -> None:
    """A home that never saw a message's own webhook (a second home on the same workspace) takes
    a signed webhook naming its id with other words and another sender: the message is
    delivered as the workspace holds it. A webhook naming many ids costs at most
    MAX_HOOK_MESSAGES reads, and none for a message already delivered."""
    _aid, rid, token = _conversation(rig, "rb")
    real = httpx.post(f"{rig.standin.url}/api/v1/livechat/message", json={
        "token": token, "rid": rid, "msg": "real words"}).json()["message"]
    rig.settle()
    fresh = remote(Home(tmp_path / "second").ensure(), rig.standin)
    try:
        receiver = WebhookReceiver(fresh, SECRET)
        hook = webhook.parse(json.dumps({
            "type": webhook.MESSAGE, "_id": rid, "visitor": {"name": "Mallory"},
            "messages": [{"_id": real["_id"], "username": "admin", "msg": "forged words",
                          "agentId": rig.standin.user_id}]}).encode())
        said = [p["message"] for name, p in receiver.events_for(hook, 1)
                if name == "message.sent"]
        assert len(said) == 1 and said[0]["id"] == real["_id"]
        assert said[0]["text"] == "real words" and said[0]["room_id"] == rid
        assert said[0]["sender"]["type"] == "visitor" and said[0]["sender"]["name"] == "V rb"
        reads: list[str] = []
        get = fresh.get

        def counted(route: str, **query: str) -> dict[str, Any]:
            if route == "chat.getMessage":
                reads.append(query["msgId"])
            return get(route, **query)

        fresh.get = counted  # type: ignore[method-assign]
        many = [{"_id": real["_id"], "msg": "again"}] + [
            {"_id": f"made-up-{i}", "msg": "x"} for i in range(200)]
        hook = webhook.parse(json.dumps({"type": webhook.MESSAGE, "_id": rid,
                                         "messages": many}).encode())
        assert receiver.events_for(hook, 2) == []
        assert real["_id"] not in reads and 0 < len(reads) <= MAX_HOOK_MESSAGES
    finally:
        fresh.close()


def test_oversize_and_malformed_bodies_are_refused(rig: Rig) -> None:
    big = b'{"type": "Message", "_id": "x", "pad": "' + b"a" * MAX_BODY_BYTES + b'"}'
    assert rig.post(big).status_code == 413
    assert rig.post(b"not json").status_code == 400
    assert rig.post(b"[" * 500_000).status_code == 400  # deeper than the parser: no 500
    assert rig.post(json.dumps({"type": "Other", "_id": "x"}).encode()).status_code == 400
    assert rig.post(json.dumps({"type": "Message", "_id": "x" * 500}).encode()).status_code == 400
    assert rig.receiver.idle()


def test_the_sender_retries_until_the_host_answers(tmp_path: Path) -> None:
    """The receiver is down when the conversation starts; the stand-in retries (0.2 s apart
    here, 10 s on Rocket.Chat) and the events arrive once it is up."""
    r = Rig(tmp_path)
    try:
        _aid, rid, _t = _conversation(r, "late")
        time.sleep(0.5)  # at least one refused attempt (nothing listens yet)
        r.start()
        r.settle()
        deadline = time.monotonic() + 10
        while "livechat.room_started" not in r.names() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("livechat.room_started", rid) in [(n, p["room"]["id"]) for n, p in r.events]
    finally:
        r.stop()


def test_secret_too_short_is_refused(tmp_path: Path, rig: Rig) -> None:
    with pytest.raises(ValueError, match="at least"):
        WebhookReceiver(rig.rs, "short")


def test_events_are_claimed_durably_across_restarts(rig: Rig) -> None:
    """A second receiver on the same store (a restarted host) processing the same webhook body
    delivers nothing already delivered."""
    _aid, rid, _t = _conversation(rig, "c4")
    rig.settle()
    again = WebhookReceiver(rig.rs, SECRET)
    seen: list[str] = []
    unsub = rig.rs.subscribe(lambda n, p: seen.append(n))
    try:
        hook = webhook.parse(json.dumps({"type": webhook.CHAT_START, "_id": rid}).encode())
        assert again.events_for(hook, 10**9) == []
    finally:
        unsub()
    assert seen == []
    assert rig.rs.livechat_get_room(SYSTEM, rid)["open"]


def test_what_happened_while_no_host_listened_is_caught_up_at_start(tmp_path: Path) -> None:
    """The host is down longer than Rocket.Chat retries (here: one retry): a room it knew
    closes and a new one starts meanwhile. The next start reads the workspace and delivers
    both, once; a room open before the home ever received a webhook is not announced."""
    r = Rig(tmp_path, retries=1).start()
    try:
        _aid, known, _t = _conversation(r, "k1")
        r.settle()
        assert ("livechat.room_started", known) in [(n, p["room"]["id"]) for n, p in r.events]
        # the host goes down: nothing listens on the webhook URL any more
        r.uv.should_exit = True
        r.thread.join(5)
        r.receiver.stop()
        httpx.post(f"{r.standin.url}/api/v1/livechat/message",
                   json={"token": _t, "rid": known, "msg": "still there?"})
        r.standin.admin("POST", "livechat/room.closeByUser", json={"rid": known})
        _aid2, new, t2 = _conversation(r, "k2")
        httpx.post(f"{r.standin.url}/api/v1/livechat/message",
                   json={"token": t2, "rid": new, "msg": "hello from k2"})
        deadline = time.monotonic() + 10
        while httpx.get(f"{r.standin.url}/_standin/status").json()["webhooks_pending"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # the workspace gave up on those webhooks
        r.events.clear()
        again = WebhookReceiver(r.rs, SECRET).start()  # the next host's start
        try:
            deadline = time.monotonic() + 10
            while len(r.events) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            got = [(n, p["room"]["id"]) for n, p in r.events]
            assert ("livechat.room_closed", known) in got
            assert ("livechat.room_started", new) in got
            assert ("livechat.agent_assigned", new) in got
            # the messages no webhook brought, each once, a room's before its close
            said = [(p["room"]["id"], p["message"]["text"]) for n, p in r.events
                    if n == "message.sent"]
            assert sorted(said) == sorted([(known, "still there?"), (new, "hello from k2")])
            assert got.index(("message.sent", known)) < got.index(("livechat.room_closed",
                                                                   known))
            assert len(got) == len(set(got))  # each once
            assert again.catch_up() >= 0 and len(r.events) == len(got)  # nothing twice
        finally:
            again.stop()
    finally:
        r.standin.stop()


def test_more_rooms_than_a_page_opened_while_down_are_all_caught_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catch-up read one page of open rooms (100, the newest): with more opened while no
    host listened, the oldest were never announced. It now reads page after page (pages of 12
    here: three and a part; 130 rooms took the suite ~15 s)."""
    monkeypatch.setattr(rooms, "ROOMS_PAGE", 12)
    r = Rig(tmp_path, retries=1).start()
    try:
        _aid, first, _t = _conversation(r, "m0")
        r.settle()
        r.uv.should_exit = True  # the host goes down
        r.thread.join(5)
        r.receiver.stop()
        r.sock.close()  # refused at once: the workspace gives up quickly
        opened = {first}
        dep = r.standin.admin("GET", "livechat/department")["departments"][0]["_id"]
        for i in range(3 * rooms.ROOMS_PAGE + 5):
            token = f"tok-many-{i:04d}-0123456789"
            httpx.post(f"{r.standin.url}/api/v1/livechat/visitor",
                       json={"visitor": {"token": token, "name": f"V{i}"}})
            room = httpx.get(f"{r.standin.url}/api/v1/livechat/room",
                             params={"token": token, "department": dep}).json()
            opened.add(room["room"]["_id"])
        r.events.clear()  # (the workspace's webhooks for them reach no one: the socket is shut)
        again = WebhookReceiver(r.rs, SECRET)
        again.catch_up()
        started = {p["room"]["id"] for n, p in r.events if n == "livechat.room_started"}
        assert started == opened - {first}, (len(started), len(opened))
    finally:
        r.standin.stop()


def test_a_home_that_never_received_a_webhook_catches_nothing_up(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    try:
        _conversation(r, "pre")  # open before Stockade was connected
        assert r.receiver.catch_up() == 0 and r.events == []
    finally:
        r.standin.stop()
        r.sock.close()


def test_a_queued_room_routed_when_an_agent_becomes_available_reaches_the_app(
        rig: Rig) -> None:
    """The workspace routes a waiting room once an agent becomes available (the stand-in does as
    Rocket.Chat's queue does) and says so with Chat Taken: the host's apps hear
    `livechat.agent_assigned` for it, once."""
    rig.events.clear()
    a = rig.standin.admin("POST", "users.create", json={"username": "ag-q1", "name": "Q"})
    aid = a["user"]["_id"]
    rig.standin.admin("POST", "livechat/users/agent", json={"username": "ag-q1"})
    rig.standin.admin("POST", "livechat/agent.status", json={"agentId": aid,
                                                             "status": "not-available"})
    dep = rig.standin.admin("POST", "livechat/department", json={
        "department": {"name": "dep-q1"}, "agents": [{"agentId": aid}]})
    token = "tok-q1-0123456789"
    httpx.post(f"{rig.standin.url}/api/v1/livechat/visitor",
               json={"visitor": {"token": token, "name": "V q1"}})
    rid = httpx.get(f"{rig.standin.url}/api/v1/livechat/room", params={
        "token": token, "department": dep["department"]["_id"]}).json()["room"]["_id"]
    rig.settle()
    mine = [n for n, p in rig.events if p["room"]["id"] == rid]
    assert mine == ["livechat.room_started"]  # queued: nobody to serve it yet
    rig.standin.admin("POST", "livechat/agent.status", json={"agentId": aid,
                                                             "status": "available"})
    rig.settle()
    mine_now = [(n, p) for n, p in rig.events if p["room"]["id"] == rid]
    assert [n for n, _ in mine_now] == ["livechat.room_started", "livechat.agent_assigned"]
    assert mine_now[1][1]["agent"]["user_id"] == aid
