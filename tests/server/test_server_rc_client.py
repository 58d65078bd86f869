"""A widely used third-party Rocket.Chat client (`rocketchat_API`, used as its README shows)
against the embedded server over real HTTP on loopback: it signs in, pages through users,
agents and managers, manages roles, agents and managers, registers a visitor who opens a room
and writes through the widget routes, lists and takes inquiries, reads and posts in rooms, and
signs out. Each call must behave as Rocket.Chat documents (the client raises on any error
status, and each answer is checked for the documented fields)."""
from __future__ import annotations

import pytest
from rocketchat_API.rocketchat import RocketChat
from test_server_rest import base_url  # noqa: F401 - fixture

from host.server import SYSTEM, EmbeddedServer
from host.server.auth import set_password

PASSWORD = "admin password 1"


@pytest.fixture
def rocket(server: EmbeddedServer, base_url: str) -> RocketChat:  # noqa: F811
    admin = server.users_create(SYSTEM, "boss", "Boss", "user", email="boss@example.org",
                                roles=["admin"])
    set_password(server.db, admin["id"], PASSWORD)
    return RocketChat("boss", PASSWORD, server_url=base_url, timeout=10)


def test_users_and_roles(rocket: RocketChat, server: EmbeddedServer, base_url: str) -> None:  # noqa: F811
    assert rocket.me()["username"] == "boss"
    assert rocket.info()["version"]
    made = rocket.users_create("jane@example.org", "Jane", "jane password", "jane")["user"]
    assert rocket.users_info(user_id=made["_id"])["user"]["username"] == "jane"
    assert rocket.users_info(username="jane")["user"]["_id"] == made["_id"]
    for i in range(60):  # more than one default page
        server.users_create(SYSTEM, f"bulk{i:02d}", "Bulk", "user")
    names = [u["username"] for u in rocket.users_list(count=25)]
    assert len(names) == 62 and len(set(names)) == 62
    rocket.users_update(made["_id"], password="a new password")
    jane = RocketChat("jane", "a new password", server_url=base_url, timeout=10)
    assert jane.me()["_id"] == made["_id"]
    rocket.users_set_active_status(made["_id"], False)
    rocket.users_set_active_status(made["_id"], True)
    minted = rocket.users_create_token(made["_id"], "unused-secret")["data"]
    assert minted["userId"] == made["_id"] and minted["authToken"]
    assert {r["_id"] for r in rocket.roles_list()["roles"]} >= {"admin", "livechat-agent"}
    rocket.roles_add_user_to_role("bot", "jane")
    assert [u["username"] for u in rocket.roles_get_users_in_role("bot")] == ["jane"]
    rocket.roles_remove_user_from_role("bot", "jane")
    assert list(rocket.roles_get_users_in_role("bot")) == []
    assert rocket.logout()["status"] == "success"


def test_agents_managers_visitors_inquiries_and_rooms(rocket: RocketChat,
                                                      server: EmbeddedServer) -> None:
    agent_id = rocket.users_create("alan@example.org", "Alan", "alan password", "alan")["user"]["_id"]
    rocket.users_create("morgan@example.org", "Morgan", "morgan password", "morgan")
    rocket.livechat_create_user("agent", username="alan")
    assert [u["_id"] for u in rocket.livechat_get_users("agent")] == [agent_id]
    assert rocket.livechat_get_user("agent", agent_id)["user"]["username"] == "alan"
    morgan = rocket.livechat_create_user("manager", username="morgan")["user"]
    assert "morgan" in [u["username"] for u in rocket.livechat_get_users("manager")]
    rocket.livechat_delete_user("manager", morgan["_id"])
    assert "morgan" not in [u["username"] for u in rocket.livechat_get_users("manager")]

    token = "widget-visitor-token-1"
    v = rocket.livechat_register_visitor(token, visitor={
        "name": "Vic", "email": "vic@example.org", "phone": "+15550100",
        "customFields": [{"key": "crmId", "value": "42", "overwrite": True}]})["visitor"]
    got = rocket.livechat_get_visitor(token)["visitor"]
    assert got["_id"] == v["_id"] and got["livechatData"]["crmId"] == "42"
    room = rocket.livechat_room(token)["room"]  # no agent available: queued
    again = rocket.livechat_room(token)
    assert again["room"]["_id"] == room["_id"] and again["newRoom"] is False
    rocket.livechat_message(token, room["_id"], "hello, anyone?")
    history = list(rocket.livechat_messages_history(room["_id"], token))
    assert [m["msg"] for m in history] == ["hello, anyone?"]

    assert room["_id"] in [r["_id"] for r in rocket.livechat_rooms()]
    assert room["_id"] in [i["rid"] for i in rocket.livechat_inquiries_list()]
    assert rocket.livechat_inquiries_get_one(room["_id"])["inquiry"]["status"] == "queued"
    taken = rocket.livechat_inquiries_take(room["_id"], userId=agent_id)["inquiry"]
    assert taken["status"] == "taken"
    info = rocket.rooms_info(room_id=room["_id"])["room"]
    assert info["servedBy"] == {"_id": agent_id, "username": "alan"}
    assert info["v"]["token"] == token and info["v"]["username"].startswith("guest-")
    posted = rocket.chat_post_message("a manager here", room_id=room["_id"])
    assert posted["message"]["msg"] == "a manager here" and posted["channel"] == room["_id"]
    rocket.chat_send_message({"rid": room["_id"], "msg": "and again"})
    assert [m["msg"] for m in rocket.livechat_messages_history(room["_id"], token)][:2] == \
        ["and again", "a manager here"]
