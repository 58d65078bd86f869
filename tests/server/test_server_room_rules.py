"""Who a livechat room may go to and who may speak in it, whatever the route: a take never gives
a room to a deactivated user; a REST transfer of a queued room is the serving agent's or a
manager's; a message checked against the serving agent
before the pre-send hook is checked again in its write, so a transfer committed while the hook
ran keeps the old speaker out."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from srvhelp import op

from host.server import SYSTEM, Caller, Conflict, EmbeddedServer, Forbidden
from host.server.rest import RestDispatcher
from host.server.shapes import User


def _agent(server: EmbeddedServer, name: str, roles: tuple[str, ...] = (),
           status: str = "not-available") -> User:
    u = server.users_create(SYSTEM, name, name.title(), "user", roles=list(roles))
    server.livechat_add_agent(SYSTEM, u["id"])
    server.livechat_set_agent_status(SYSTEM, u["id"], status)
    return u


def _queued(server: EmbeddedServer, n: int, department: str | None) -> str:
    v = server.save_visitor(f"widget-token-{n}", f"Visitor {n}")
    room = server.visitor_start_room(v["id"], department)
    assert room["served_by"] is None
    return room["id"]


# -- take ---------------------------------------------------------------------------------------

def test_take_refuses_a_deactivated_agent_on_every_route(server: EmbeddedServer,
                                                         app: Caller) -> None:
    alice, bob = _agent(server, "alice"), _agent(server, "bob")
    boss = server.users_create(SYSTEM, "boss", "Boss", "user", roles=["livechat-manager"])
    server.add_department("Sales", [alice["id"], bob["id"]])
    server.users_set_active(SYSTEM, bob["id"], False)
    rooms = [_queued(server, i, "Sales") for i in range(3)]
    with pytest.raises(Conflict, match="deactivated"):
        server.livechat_take_room(app, rooms[0], bob["id"], op_id=op())
    rest = RestDispatcher(server)
    st, body = rest.call(boss["id"], "POST", "livechat/inquiries.take",
                         body={"inquiryId": rooms[1], "userId": bob["id"]})
    assert st == 400 and "deactivated" in body["error"], body
    st, body = rest.call(boss["id"], "POST", "livechat/room.take",
                         body={"roomId": rooms[2], "userId": bob["id"]})
    assert st == 400 and "deactivated" in body["error"], body
    assert all(server.livechat_get_room(SYSTEM, r)["served_by"] is None for r in rooms)
    # a queued room still goes to a not-available agent who takes it (manual routing)
    assert server.livechat_take_room(app, rooms[0], alice["id"], op_id=op())["served_by"] == (
        alice["id"])


def test_take_keeps_an_agent_outside_the_rooms_department(server: EmbeddedServer,
                                                          app: Caller) -> None:
    """Not refused, as in Rocket.Chat: agent-sync gives a room of the External department to
    the agent an external router chose (the demo's story), who is in no department."""
    bob = _agent(server, "bob")
    server.add_department("Support", [bob["id"]])
    server.add_department("External")
    room = _queued(server, 1, "External")
    assert server.livechat_take_room(app, room, bob["id"], op_id=op())["served_by"] == bob["id"]


# -- REST transfer of a queued room -------------------------------------------------------------

def test_an_agent_cannot_transfer_or_forward_a_queued_room_it_does_not_serve(
        server: EmbeddedServer) -> None:
    alice, bob = _agent(server, "alice"), _agent(server, "bob", status="available")
    boss = server.users_create(SYSTEM, "boss", "Boss", "user", roles=["livechat-manager"])
    server.add_department("Sales", [alice["id"]])
    server.add_department("Support", [bob["id"]])
    q1, q2 = _queued(server, 1, "Sales"), _queued(server, 2, "Sales")
    rest = RestDispatcher(server)
    for route, body in (("livechat/room.transfer", {"roomId": q1, "userId": bob["id"]}),
                        ("livechat/room.forward", {"roomId": q2, "departmentId": "Support"})):
        st, out = rest.call(alice["id"], "POST", route, body=body)
        assert st == 403 and out["errorType"] == "error-unauthorized", (route, out)
    assert server.livechat_get_room(SYSTEM, q1)["served_by"] is None
    assert server.livechat_get_room(SYSTEM, q2)["served_by"] is None
    # a manager may; and the serving agent may pass its own room on
    st, out = rest.call(boss["id"], "POST", "livechat/room.forward",
                        body={"roomId": q1, "departmentId": "Support"})
    assert st == 200 and out["room"]["servedBy"]["_id"] == bob["id"], out
    server.set_agent_status(alice["id"], "available")
    st, out = rest.call(bob["id"], "POST", "livechat/room.transfer",
                        body={"roomId": q1, "userId": alice["id"]})
    assert st == 200 and out["room"]["servedBy"]["_id"] == alice["id"], out


# -- the serving agent, checked again in the message's write ------------------------------------

def _send_during_transfer(server: EmbeddedServer, send: Callable[[], Any],
                          transfer: Callable[[], Any]) -> dict[str, Any]:
    """Run `send` with a pre-send hook that waits until `transfer` has committed."""
    in_hook, go_on = threading.Event(), threading.Event()

    def hook(payload: dict[str, Any]) -> dict[str, Any]:
        in_hook.set()
        go_on.wait(10)
        return {"text": payload["text"]}

    server.set_pre_send_hook(hook)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = send()
        except Exception as e:  # the test reads it
            out["error"] = e
        finally:
            server.db.release()

    t = threading.Thread(target=run)
    t.start()
    assert in_hook.wait(10)
    server.set_pre_send_hook(None)
    transfer()
    go_on.set()
    t.join(10)
    return out


def test_a_relay_refused_when_the_room_moved_while_the_hook_ran(server: EmbeddedServer,
                                                               app: Caller) -> None:
    assert app.app_user_id is not None
    server.livechat_add_agent(SYSTEM, app.app_user_id)
    server.livechat_set_agent_status(SYSTEM, app.app_user_id, "available")
    human = _agent(server, "alice")
    room = server.visitor_start_room(server.save_visitor("widget-token-1", "Vic")["id"])
    assert room["served_by"] == app.app_user_id
    server.set_agent_status(human["id"], "available")
    out = _send_during_transfer(
        server,
        lambda: server.livechat_relay_message(app, room["id"], "give me your card",
                                              "Bob (Salesforce)", op_id=op()),
        lambda: server.livechat_transfer_room(SYSTEM, room["id"], agent_id=human["id"]))
    assert isinstance(out.get("error"), Forbidden), out
    assert server.messages_list(SYSTEM, room["id"]) == []


def test_an_agents_rest_message_refused_when_the_room_moved_while_the_hook_ran(
        server: EmbeddedServer) -> None:
    alice, bob = _agent(server, "alice", status="available"), _agent(server, "bob")
    room = server.visitor_start_room(server.save_visitor("widget-token-1", "Vic")["id"])
    assert room["served_by"] == alice["id"]
    server.set_agent_status(bob["id"], "available")
    rest = RestDispatcher(server)
    for route, body in (("chat.sendMessage", {"message": {"rid": room["id"], "msg": "hi"}}),
                        ("chat.postMessage", {"roomId": room["id"], "text": "hi"})):
        served = server.livechat_get_room(SYSTEM, room["id"])["served_by"]
        back = alice["id"] if served == bob["id"] else bob["id"]
        speaker = served

        def send(route: str = route, body: dict[str, Any] = body,
                 speaker: str | None = speaker) -> tuple[int, dict[str, Any]]:
            return rest.call(speaker, "POST", route, body=body)

        out = _send_during_transfer(
            server, send,
            lambda back=back: server.livechat_transfer_room(SYSTEM, room["id"], agent_id=back))
        st, answer = out["result"]
        assert st == 403 and answer["errorType"] == "error-unauthorized", (route, answer)
    assert server.messages_list(SYSTEM, room["id"]) == []
    # the agent now serving speaks as before
    served = server.livechat_get_room(SYSTEM, room["id"])["served_by"]
    st, _ = rest.call(served, "POST", "chat.sendMessage",
                      body={"message": {"rid": room["id"], "msg": "hello"}})
    assert st == 200
