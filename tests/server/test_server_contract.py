"""The REST contract, family by family, written from Rocket.Chat's OpenAPI definitions
(RocketChat/Rocket.Chat-Open-API: authentication, user-management, omnichannel, rooms,
messaging): for each call, the documented status, the fields a success must carry, and for a
refusal the documented error shape and `errorType`. Over real HTTP on loopback."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_server_rest import base_url  # noqa: F401 - fixture

from host.server import SYSTEM, EmbeddedServer
from host.server.auth import set_password
from host.server.personal_tokens import mint

PASSWORD = "contract password"
UNAUTHORIZED = {"status": "error", "message": "You must be logged in to do this."}


class World:
    """An admin, an agent with a queued and a served room, a visitor, a plain user."""

    def __init__(self, server: EmbeddedServer, base: str) -> None:
        admin = server.users_create(SYSTEM, "admin1", "Admin", "user", roles=["admin"])
        set_password(server.db, admin["id"], PASSWORD)
        self.admin = httpx.Client(base_url=base, timeout=10, headers={
            "X-User-Id": admin["id"], "X-Auth-Token": mint(server.db, admin["id"], "t", 0.0)})
        self.anon = httpx.Client(base_url=base, timeout=10)
        self.agent = server.users_create(SYSTEM, "agent1", "Agent", "user")
        server.livechat_add_agent(SYSTEM, self.agent["id"])
        self.agent2 = server.users_create(SYSTEM, "agent2", "Agent Two", "user")
        server.livechat_add_agent(SYSTEM, self.agent2["id"])
        self.plain = server.users_create(SYSTEM, "plain1", "Plain", "user")
        self.visitor = server.save_visitor("contract-token-1", "Vic", None, None)
        self.room = server.visitor_start_room(self.visitor["id"])  # queued: nobody available
        self.vars = {"agent": self.agent["id"], "agent2": self.agent2["id"],
                     "room": self.room["id"],
                     "plain": self.plain["id"], "token": "contract-token-1"}

    def close(self) -> None:
        self.admin.close()
        self.anon.close()


@pytest.fixture
def world(server: EmbeddedServer, base_url: str) -> World:  # noqa: F811
    w = World(server, base_url)
    yield w  # type: ignore[misc]
    w.close()


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


# (who, method, path, query or body, status, fields a success carries | errorType of a refusal)
AUTH = [
    ("anon", "POST", "login", {"user": "admin1", "password": PASSWORD}, 200, ["status", "data"]),
    ("anon", "POST", "login", {"user": "admin1", "password": "nope"}, 401, "Unauthorized"),
    ("anon", "POST", "login", {"password": PASSWORD}, 400, "invalid-params"),
    ("anon", "GET", "me", {}, 401, None),
    ("admin", "GET", "me", {}, 200, ["_id", "username", "roles", "active"]),
    ("anon", "GET", "info", {}, 200, ["info"]),
]
USERS = [
    ("admin", "POST", "users.create", {"username": "newbie", "name": "N", "email":
                                       "n@example.org", "password": PASSWORD}, 200, ["user"]),
    ("admin", "POST", "users.create", {"username": "plain1", "name": "Dup"}, 400,
     "error-field-unavailable"),
    ("admin", "POST", "users.create", {"name": "no username"}, 400, "invalid-params"),
    ("admin", "GET", "users.info", {"userId": "{plain}"}, 200, ["user"]),
    ("admin", "GET", "users.info", {"userId": "missing"}, 400, "User not found."),
    ("admin", "GET", "users.list", {"count": "2"}, 200, ["users", "count", "offset", "total"]),
    ("admin", "POST", "users.setActiveStatus", {"userId": "{plain}", "activeStatus": True},
     200, ["user"]),
    ("admin", "POST", "users.createToken", {"userId": "{plain}"}, 200, ["data"]),
    ("admin", "POST", "users.generatePersonalAccessToken", {"tokenName": "ci"}, 200, ["token"]),
]
ROLES = [
    ("admin", "GET", "roles.list", {}, 200, ["roles"]),
    ("admin", "POST", "roles.addUserToRole", {"roleId": "bot", "username": "plain1"}, 200,
     ["role"]),
    ("admin", "POST", "roles.addUserToRole", {"roleName": "bot", "username": "ghost"}, 400,
     "error-invalid-user"),
    ("admin", "GET", "roles.getUsersInRole", {"role": "admin"}, 200, ["users", "total"]),
    ("admin", "GET", "roles.getUsersInRole", {"role": "no-such-role"}, 400, "invalid-params"),
]
OMNICHANNEL = [
    ("admin", "GET", "livechat/users/agent", {}, 200, ["users", "count", "offset", "total"]),
    ("admin", "GET", "livechat/users/agent/{agent}", {}, 200, ["user"]),
    ("admin", "GET", "livechat/users/agent/{plain}", {}, 400, "error-invalid-user"),
    ("admin", "POST", "livechat/users/manager", {"username": "plain1"}, 200, ["user"]),
    ("admin", "GET", "livechat/users/manager", {}, 200, ["users", "total"]),
    ("anon", "POST", "livechat/visitor", {"visitor": {"token": "contract-token-2", "name": "W",
                                                      "phone": "+1555"}}, 200, ["visitor"]),
    ("anon", "GET", "livechat/visitor/{token}", {}, 200, ["visitor"]),
    ("anon", "GET", "livechat/visitor/unknown-token-1", {}, 400, "error-invalid-visitor"),
    ("anon", "GET", "livechat/room", {"token": "{token}"}, 200, ["room", "newRoom"]),
    ("anon", "POST", "livechat/message", {"token": "{token}", "rid": "{room}", "msg": "hi"},
     200, ["message"]),
    ("anon", "POST", "livechat/message", {"token": "{token}", "rid": "missing", "msg": "hi"},
     400, "error-invalid-room"),
    ("anon", "GET", "livechat/messages.history/{room}", {"token": "{token}"}, 200,
     ["messages", "total"]),
    ("anon", "GET", "livechat/rooms", {}, 401, None),
    ("admin", "GET", "livechat/rooms", {"open": "true"}, 200, ["rooms", "total"]),
    ("admin", "GET", "livechat/rooms", {"open": "maybe"}, 400, "invalid-params"),
    ("admin", "GET", "livechat/inquiries.list", {}, 200, ["inquiries", "total"]),
    ("admin", "GET", "livechat/inquiries.getOne", {"roomId": "{room}"}, 200, ["inquiry"]),
    ("admin", "POST", "livechat/inquiries.take", {"inquiryId": "{room}", "userId": "{agent}"},
     200, ["inquiry"]),
    ("admin", "GET", "livechat/room.info", {"roomId": "missing"}, 400, "error-invalid-room"),
    ("admin", "GET", "livechat/config/routing", {}, 200, ["config"]),
]
ROOMS_MESSAGES = [
    ("admin", "GET", "rooms.info", {"roomId": "{room}"}, 200, ["room"]),
    ("admin", "POST", "chat.postMessage", {"roomId": "{room}", "text": "hello"}, 200,
     ["message", "ts", "channel"]),
    ("admin", "POST", "chat.postMessage", {"channel": "#general", "text": "x"}, 400,
     "invalid-params"),
    ("admin", "POST", "chat.sendMessage", {"message": {"rid": "{room}", "msg": "x"}}, 200,
     ["message"]),
    ("admin", "GET", "channels.messages", {"roomId": "{room}", "count": "1"}, 200,
     ["messages", "count", "offset", "total"]),
    ("admin", "GET", "no.such.route", {}, 404, "error-invalid-route"),
]


@pytest.mark.parametrize("family", [AUTH, USERS, ROLES, OMNICHANNEL, ROOMS_MESSAGES],
                         ids=["auth", "users", "roles", "omnichannel", "rooms-messages"])
def test_family(world: World, family: list[tuple[Any, ...]]) -> None:
    for who, method, path, params, status, expect in family:
        client = world.admin if who == "admin" else world.anon
        params = _fill(params, world.vars)
        url = "/api/v1/" + path.format(**world.vars)
        r = (client.get(url, params=params) if method == "GET"
             else client.request(method, url, json=params))
        label = f"{method} {path} {params}"
        assert r.status_code == status, (label, r.text)
        body = r.json()
        if status == 200:
            assert all(k in body for k in expect), (label, body)
            assert body.get("success", True) is True or body.get("status") == "success"
        elif status == 401 and expect is None:
            assert body == UNAUTHORIZED, (label, body)
        elif status == 401:
            assert body["status"] == "error" and body["error"] == expect, (label, body)
        elif "errorType" not in body:  # Rocket.Chat's bare refusals: the text is all there is
            assert body == {"success": False, "error": expect}, (label, body)
        else:
            assert body["success"] is False and body["errorType"] == expect, (label, body)
            assert body["error"].endswith(f"[{expect}]") or status == 404, (label, body)


def test_users_update_and_delete(world: World, server: EmbeddedServer) -> None:
    """users.update changes name, e-mail and roles; users.delete removes a user who served no
    room, and refuses an agent whose rooms name it (deactivate instead)."""
    r = world.admin.post("/api/v1/users.update", json={"userId": world.plain["id"], "data": {
        "name": "Plain Renamed", "email": "plain@example.org", "roles": ["user", "bot"]}})
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert user["name"] == "Plain Renamed" and user["roles"] == ["bot", "user"]
    assert user["emails"] == [{"address": "plain@example.org", "verified": False}]
    gone = world.admin.post("/api/v1/users.delete", json={"userId": world.plain["id"]})
    assert gone.status_code == 200
    assert world.admin.get("/api/v1/users.info", params={"userId": world.plain["id"]}) \
        .json()["error"] == "User not found."
    server.livechat_set_agent_status(SYSTEM, world.agent["id"], "available")
    v = server.save_visitor("contract-token-9", "V", None, None)
    server.visitor_start_room(v["id"])  # routed to the agent
    kept = world.admin.post("/api/v1/users.delete", json={"userId": world.agent["id"]})
    assert kept.status_code == 400 and kept.json()["errorType"] == "error-action-not-allowed"
    assert world.admin.get("/api/v1/channels.list").json()["total"] == 0
    hist = world.admin.get("/api/v1/channels.history", params={"roomId": world.vars["room"]})
    assert hist.status_code == 200 and "messages" in hist.json()


def test_the_livechat_agent_role_is_being_an_agent(world: World) -> None:
    """As in Rocket.Chat, for an operator: the agent list is that role."""
    def agents() -> set[str]:
        return {u["_id"] for u in world.admin.get("/api/v1/livechat/users/agent",
                                                  params={"count": "0"}).json()["users"]}

    uid = world.plain["id"]
    assert uid not in agents()
    world.admin.post("/api/v1/roles.addUserToRole", json={"roleId": "livechat-agent",
                                                          "userId": uid})
    assert uid in agents()
    world.admin.post("/api/v1/roles.removeUserFromRole", json={"roleName": "livechat-agent",
                                                               "userId": uid})
    assert uid not in agents()
    made = world.admin.post("/api/v1/users.create", json={
        "username": "born-agent", "name": "B", "roles": ["user", "livechat-agent"]}).json()
    assert made["user"]["_id"] in agents()


def test_room_forward(world: World, server: EmbeddedServer) -> None:
    """livechat/room.forward (as Rocket.Chat's clients call a transfer) to an available agent."""
    world.admin.post("/api/v1/livechat/inquiries.take",
                     json={"inquiryId": world.vars["room"], "userId": world.vars["agent"]})
    server.livechat_set_agent_status(SYSTEM, world.vars["agent2"], "available")
    r = world.admin.post("/api/v1/livechat/room.forward",
                         json={"roomId": world.vars["room"], "userId": world.vars["agent2"]})
    assert r.status_code == 200, r.text
    assert r.json()["room"]["servedBy"]["_id"] == world.vars["agent2"]
