from __future__ import annotations

from typing import Any

import pytest
from srvhelp import Recorder, op

from host.server import (
    SYSTEM,
    Caller,
    Conflict,
    EmbeddedServer,
    Forbidden,
    InvalidArgument,
    Prevented,
)
from host.server.shapes import Room


@pytest.fixture
def room(server: EmbeddedServer, app: Caller) -> Room:
    assert app.app_user_id
    server.livechat_add_agent(app, app.app_user_id, op_id=op())
    server.livechat_set_agent_status(app, app.app_user_id, "available", op_id=op())
    vid = server.save_visitor("visitor-token-1", "Vic")["id"]
    r = server.visitor_start_room(vid)
    assert r["served_by"] == app.app_user_id
    return r


def test_send_as_app_user_and_list(server: EmbeddedServer, app: Caller, room: Room,
                                   events: Recorder, clock: Any) -> None:
    events.clear()
    m = server.messages_send(app, room["id"], "Hello, how can I help?", op_id=op())
    assert m["sender"] == {"type": "user", "id": app.app_user_id, "username": "app.agent-sync",
                           "name": "Agent Sync"}
    assert m["app_id"] == "agent-sync" and m["room_id"] == room["id"]
    assert events.names() == ["message.sent"]
    assert events.events[0][1]["message"] == m and events.events[0][1]["room"]["id"] == room["id"]
    clock.advance(1)
    v = server.visitor_send_message(room["visitor_id"], room["id"], "My order is late")
    assert v["sender"]["type"] == "visitor" and v["app_id"] is None
    listed = server.messages_list(app, room["id"])
    assert [x["text"] for x in listed] == ["Hello, how can I help?", "My order is late"]
    assert [x["text"] for x in server.messages_list(app, room["id"], limit=1)] == [
        "My order is late"
    ]
    with pytest.raises(InvalidArgument):
        server.messages_list(app, room["id"], limit=501)


def test_message_limits_and_closed_rooms(server: EmbeddedServer, app: Caller, room: Room) -> None:
    with pytest.raises(InvalidArgument, match="8192 bytes"):
        server.messages_send(app, room["id"], "x" * 8193, op_id=op())
    with pytest.raises(InvalidArgument):
        server.messages_send(app, room["id"], "", op_id=op())
    with pytest.raises(Forbidden):
        other = server.save_visitor("visitor-token-2")["id"]
        server.visitor_send_message(other, room["id"], "let me in")
    server.livechat_close_room(app, room["id"], op_id=op())
    with pytest.raises(Conflict, match="closed"):
        server.messages_send(app, room["id"], "too late", op_id=op())
    assert server.messages_list(app, room["id"]) == []


def test_app_without_app_user_cannot_send(server: EmbeddedServer, room: Room) -> None:
    with pytest.raises(InvalidArgument, match="no app user"):
        server.messages_send(Caller("x", "i", None), room["id"], "hi", op_id=op())


def test_pre_send_hook_modifies(server: EmbeddedServer, app: Caller, room: Room,
                                events: Recorder) -> None:
    seen: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> dict[str, Any]:
        seen.append(msg)
        return {**msg, "text": msg["text"].replace("secret", "******"), "sender": "forged"}

    server.set_pre_send_hook(hook)
    m = server.messages_send(app, room["id"], "my secret is 42", op_id=op())
    assert m["text"] == "my ****** is 42"
    assert m["sender"]["id"] == app.app_user_id  # only the text may change
    assert seen[0]["room"]["id"] == room["id"] and seen[0]["app_id"] == "agent-sync"
    assert seen[0]["origin"] == {"app_id": "agent-sync", "install_id": "inst-1"}
    server.visitor_send_message(room["visitor_id"], room["id"], "no secret here")
    assert seen[1]["origin"] is None and seen[1]["sender"]["type"] == "visitor"
    assert server.messages_list(app, room["id"])[0]["text"] == "my ****** is 42"
    assert events.events[-2][1]["message"]["text"] == "my ****** is 42"


def test_pre_send_hook_prevents(server: EmbeddedServer, app: Caller, room: Room,
                                events: Recorder) -> None:
    server.set_pre_send_hook(lambda msg: None)
    events.clear()
    oid = op()
    with pytest.raises(Prevented) as ei:
        server.messages_send(app, room["id"], "blocked", op_id=oid)
    assert ei.value.code == "conflict"
    assert not server.was_applied(oid)
    server.set_pre_send_hook(
        lambda msg: {"prevented": True, "prevented_by": "app dlp-guard", "reason": "card number"}
    )
    with pytest.raises(Prevented, match="prevented by app dlp-guard: card number"):
        server.visitor_send_message(room["visitor_id"], room["id"], "4111 1111 1111 1111")

    def raises_prevented(msg: dict[str, Any]) -> dict[str, Any]:
        raise Prevented("prevented by app x (timeout, fail closed)", prevented_by="x")

    server.set_pre_send_hook(raises_prevented)
    with pytest.raises(Prevented, match="fail closed"):
        server.messages_send(app, room["id"], "again", op_id=op())

    def broken(msg: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("bug")

    server.set_pre_send_hook(broken)
    with pytest.raises(Prevented, match="hook failed"):
        server.messages_send(app, room["id"], "again", op_id=op())
    server.set_pre_send_hook(lambda msg: {**msg, "text": "y" * 9000})
    with pytest.raises(InvalidArgument, match="pre-send hook returned invalid text"):
        server.messages_send(app, room["id"], "again", op_id=op())
    assert events.events == []
    assert server.messages_list(app, room["id"]) == []
    server.set_pre_send_hook(None)
    assert server.messages_send(app, room["id"], "free", op_id=op())["text"] == "free"


def test_retried_send_does_not_rerun_the_hook(server: EmbeddedServer, app: Caller,
                                              room: Room) -> None:
    calls: list[str] = []

    def hook(msg: dict[str, Any]) -> dict[str, Any]:
        calls.append(msg["text"])
        return msg

    server.set_pre_send_hook(hook)
    oid = op()
    m1 = server.messages_send(app, room["id"], "once", op_id=oid)
    m2 = server.messages_send(app, room["id"], "once", op_id=oid)
    assert m1 == m2 and calls == ["once"]
    assert len(server.messages_list(app, room["id"])) == 1


def test_operator_agent_sends(server: EmbeddedServer, room: Room) -> None:
    human = server.users_create(SYSTEM, "human", "Hu Man", "user")
    m = server.agent_send_message(human["id"], room["id"], "hi")
    assert m["sender"]["username"] == "human" and m["app_id"] is None
    server.users_deactivate(SYSTEM, human["id"])
    with pytest.raises(Conflict, match="deactivated"):
        server.agent_send_message(human["id"], room["id"], "hi")
