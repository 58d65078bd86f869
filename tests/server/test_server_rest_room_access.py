"""Rocket.Chat's room permissions over real HTTP: an agent sees and acts on the rooms it serves
and its departments' queue, never another agent's conversation; managers see every room.

Before, authorization was by role only: one agent read another agent's messages and visitor
(e-mail, phone, widget token), and took over and closed that agent's room."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from srvhelp import op
from test_server_rest import base_url, client, svc  # noqa: F401 - fixtures

from host.server import SYSTEM, Caller, EmbeddedServer, Forbidden
from host.server.personal_tokens import mint


class Staff:
    def __init__(self, server: EmbeddedServer, base_url: str, name: str,  # noqa: F811
                 roles: list[str]) -> None:
        self.user = server.users_create(SYSTEM, name, name.title(), "user", roles=roles)
        token = mint(server.db, self.user["id"], "t", 0.0)
        self.http = httpx.Client(base_url=base_url, timeout=10, headers={
            "X-User-Id": self.user["id"], "X-Auth-Token": token})


@pytest.fixture
def desk(server: EmbeddedServer, base_url: str) -> Iterator[dict[str, object]]:  # noqa: F811
    alice = Staff(server, base_url, "alice", [])
    bob = Staff(server, base_url, "bob", [])
    boss = Staff(server, base_url, "boss", ["livechat-manager"])
    for s in (alice, bob):
        server.livechat_add_agent(SYSTEM, s.user["id"])
    sales = server.add_department("Sales", [alice.user["id"]])
    server.add_department("Support", [bob.user["id"]])
    server.livechat_set_agent_status(SYSTEM, alice.user["id"], "available")
    v = server.save_visitor("widget-token-1", "Vic", "vic@example.org", None)
    room = server.visitor_start_room(v["id"], "Sales")  # routed to alice
    said = server.visitor_send_message(v["id"], room["id"], "my card is 4111...")
    queued_v = server.save_visitor("widget-token-2", "Quinn", None, None)
    server.set_agent_status(alice.user["id"], "not-available")
    queued = server.visitor_start_room(queued_v["id"], "Sales")  # nobody available: queued
    yield {"alice": alice, "bob": bob, "boss": boss, "room": room, "queued": queued,
           "visitor": v, "sales": sales, "said": said}
    for s in (alice, bob, boss):
        s.http.close()


def test_an_agent_cannot_read_or_take_another_agents_conversation(desk: dict) -> None:
    bob, room, v = desk["bob"], desk["room"], desk["visitor"]
    assert room["served_by"] == desk["alice"].user["id"]
    for r in (bob.http.get("/api/v1/livechat/room.info", params={"roomId": room["id"]}),
              bob.http.get("/api/v1/channels.messages", params={"roomId": room["id"]}),
              bob.http.get("/api/v1/chat.getMessage", params={"msgId": desk["said"]["id"]}),
              bob.http.get("/api/v1/livechat/visitors.info", params={"visitorId": v["id"]}),
              bob.http.post("/api/v1/livechat/room.transfer",
                            json={"roomId": room["id"], "userId": bob.user["id"]}),
              bob.http.post("/api/v1/livechat/room.take", json={"roomId": room["id"]}),
              bob.http.post("/api/v1/livechat/room.closeByUser", json={"rid": room["id"]}),
              bob.http.post("/api/v1/chat.sendMessage",
                            json={"message": {"rid": room["id"], "msg": "hi, it's bob"}})):
        assert r.status_code == 403, r.text
        assert r.json()["errorType"] == "error-unauthorized"
    listed = bob.http.get("/api/v1/livechat/rooms").json()["rooms"]
    assert room["id"] not in {x["_id"] for x in listed}
    # nothing changed: still alice's, still open, no message from bob
    info = desk["boss"].http.get("/api/v1/livechat/room.info",
                                 params={"roomId": room["id"]}).json()["room"]
    assert info["open"] is True and info["servedBy"]["_id"] == desk["alice"].user["id"]


def test_the_serving_agent_and_the_queue(desk: dict) -> None:
    alice, bob, room, queued = desk["alice"], desk["bob"], desk["room"], desk["queued"]
    mine = {x["_id"] for x in alice.http.get("/api/v1/livechat/rooms").json()["rooms"]}
    assert mine == {room["id"], queued["id"]}  # served + its department's queue
    assert alice.http.get("/api/v1/channels.messages",
                          params={"roomId": room["id"]}).json()["total"] == 1
    one = alice.http.get("/api/v1/chat.getMessage", params={"msgId": desk["said"]["id"]})
    assert one.json()["message"]["msg"] == "my card is 4111..."
    assert alice.http.get("/api/v1/chat.getMessage", params={"msgId": "nope"}).status_code == 400
    # the Sales queue is not bob's (he is in Support)
    assert bob.http.post("/api/v1/livechat/room.take",
                         json={"roomId": queued["id"]}).status_code == 403
    assert alice.http.post("/api/v1/livechat/room.take",
                           json={"roomId": queued["id"]}).status_code == 200
    assert alice.http.post("/api/v1/livechat/room.closeByUser",
                           json={"rid": room["id"]}).status_code == 200


def test_a_manager_sees_and_closes_any_room(desk: dict) -> None:
    boss, room = desk["boss"], desk["room"]
    every = {x["_id"] for x in boss.http.get("/api/v1/livechat/rooms").json()["rooms"]}
    assert {room["id"], desk["queued"]["id"]} <= every
    assert boss.http.get("/api/v1/livechat/visitors.info",
                         params={"visitorId": desk["visitor"]["id"]}).status_code == 200
    assert boss.http.post("/api/v1/livechat/room.closeByUser",
                          json={"rid": room["id"]}).status_code == 200


def test_only_message_impersonate_shows_another_name(desk: dict, server: EmbeddedServer,
                                                     base_url: str) -> None:  # noqa: F811
    """`alias` / `avatar` on chat.sendMessage need Rocket.Chat's `message-impersonate` (roles
    `bot` and `app`, what an app's own user relays with, and admins): the serving agent may not
    show the visitor another name (before, any serving agent posted as "Bank Security Team")."""
    alice, room = desk["alice"], desk["room"]
    server.livechat_set_agent_status(SYSTEM, alice.user["id"], "available")
    for extra in ({"alias": "Bank Security Team"}, {"avatar": "https://evil.example/x.png"}):
        r = alice.http.post("/api/v1/chat.sendMessage", json={"message": {
            "rid": room["id"], "msg": "Please confirm your card number", **extra}})
        assert r.status_code == 403 and "message-impersonate" in r.json()["error"], r.text
    assert [m["text"] for m in server.messages_list(SYSTEM, room["id"])] == [
        "my card is 4111..."]  # nothing was written
    plain = alice.http.post("/api/v1/chat.sendMessage", json={"message": {
        "rid": room["id"], "msg": "hello, Alice here"}})
    assert plain.status_code == 200 and "alias" not in plain.json()["message"]
    relay = Staff(server, base_url, "relay", ["bot", "livechat-agent"])
    server.livechat_add_agent(SYSTEM, relay.user["id"])
    server.livechat_transfer_room(SYSTEM, room["id"], agent_id=relay.user["id"])
    shown = relay.http.post("/api/v1/chat.sendMessage", json={"message": {
        "rid": room["id"], "msg": "Hi, Dana here", "alias": "Dana"}})
    assert shown.status_code == 200 and shown.json()["message"]["alias"] == "Dana", shown.text
    relay.http.close()


def test_an_app_cannot_hand_a_person_the_power_to_pose(desk: dict, server: EmbeddedServer,
                                                       app: Caller) -> None:
    """`bot` and `app` are no admin-class roles, so a policy may let an app assign them, with
    `any_user` to people it never made; both carry `message-impersonate`. Given one, the serving
    agent above posted to its visitor as "Bank Security Team" (before: the assign succeeded and
    the post was a 200). An app gives them only to bot users and users it created; the operator
    may give them to anyone."""
    alice, room = desk["alice"], desk["room"]
    for role in ("bot", "app"):
        with pytest.raises(Forbidden, match="message-impersonate"):
            server.roles_assign(app, alice.user["id"], role, op_id=op())
    assert "bot" not in server.users_get(SYSTEM, alice.user["id"])["roles"]
    r = alice.http.post("/api/v1/chat.sendMessage", json={"message": {
        "rid": room["id"], "msg": "Please confirm your card number",
        "alias": "Bank Security Team"}})
    assert r.status_code == 403, r.text
    # Its own users are its own to shape (an agent mirror kept routable while offline), and a
    # bot user is no person.
    mirror = server.users_create(app, "mirror", "Mirror", "user", roles=["bot"], op_id=op())
    assert mirror["roles"] == ["bot"]
    made = server.users_create(app, "made", "Made", "user", op_id=op())
    assert "bot" in server.roles_assign(app, made["id"], "bot", op_id=op())["roles"]
    robot = server.users_create(SYSTEM, "robot", "Robot", "bot")
    assert "app" in server.roles_assign(app, robot["id"], "app", op_id=op())["roles"]
    assert "bot" in server.roles_assign(SYSTEM, alice.user["id"], "bot")["roles"]
