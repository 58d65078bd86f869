"""Proxy Agent, run through the app-author harness (no host needed)."""
from pathlib import Path

import pytest

from sandbox.errors import NotFound, PermissionDenied
from sandbox.harness import AppHarness

APP_DIR = Path(__file__).resolve().parent.parent


def harness(**kw):
    h = AppHarness.from_dir(APP_DIR, **kw)
    # What the operator does at install: make the app's own user a livechat agent. Not
    # available, so routing does not pick it by itself: the app takes the rooms it wants.
    h.make_agent(h.app_user["id"], status="not-available")
    return h


def external_visitor(h, name="Eve External", avatar="https://agents.example/eve.png"):
    fields = {"externalAgentName": name}
    if avatar:
        fields["externalAgentAvatar"] = avatar
    return h.add_visitor(name="Vera", custom_fields=fields)


def test_takes_the_room_with_its_own_user_and_shows_the_external_agent():
    h = harness()
    started = h.start_room(external_visitor(h)["id"])
    room_id = started["room"]["id"]

    assert h.fire("livechat.room_started", started) == {"taken": room_id}
    assert h.calls_to("livechat.take_room") == [{"room_id": room_id,
                                                  "agent_id": h.app_user["id"]}]
    h.deliver()  # the agent_assigned event our take caused

    room = h.server.rooms[room_id]
    assert room["served_by"] == h.app_user["id"]
    assert room["agent_display"] == {"name": "Eve External",
                                     "avatar_url": "https://agents.example/eve.png"}
    # The relayed greeting carries the external agent's display; the sender stays the app user.
    (greeting,) = [m for m in h.server.messages if m["room_id"] == room_id]
    assert greeting["display"] == {"name": "Eve External",
                                   "avatar_url": "https://agents.example/eve.png"}
    assert greeting["sender"]["id"] == h.app_user["id"]
    # Least privilege: nothing created, no roles, no agents made.
    assert not {"users.create", "roles.assign", "livechat.add_agent"} & set(h.actions())
    assert [u["username"] for u in h.server.users.values()] == ["app.proxy-agent"]


def test_looks_up_its_own_user_once():
    h = harness()
    for _ in range(2):
        started = h.start_room(external_visitor(h)["id"])
        h.fire("livechat.room_started", started)
        h.close_room(started["room"]["id"], by_visitor=True)
    assert h.calls_to("users.get_by_username") == [{"username": "app.proxy-agent"}]


def test_leaves_conversations_not_meant_for_the_external_system():
    h = harness()
    started = h.start_room(h.add_visitor(name="Vic")["id"])
    assert h.fire("livechat.room_started", started) is None
    assert h.calls == []


def test_does_not_take_a_room_a_human_already_serves():
    h = harness()
    human = h.add_user("hana", agent=True)
    started = h.start_room(external_visitor(h)["id"])
    h.fire("livechat.room_started", started)
    h.deliver()  # agent_assigned for hana: not ours
    assert h.server.rooms[started["room"]["id"]]["served_by"] == human["id"]
    assert "livechat.set_agent_display" not in h.actions()
    assert "livechat.take_room" not in h.actions()


def test_labels_rooms_routing_gives_it_with_the_fallback_name():
    h = harness(settings={"fallback_name": "Acme Support"})
    h.server.livechat_set_agent_status(h.app_user["id"], "available")  # routing picks it now
    started = h.start_room(h.add_visitor(name="Vic")["id"])
    h.deliver()
    room = h.server.rooms[started["room"]["id"]]
    assert room["agent_display"] == {"name": "Acme Support", "avatar_url": None}


def test_withheld_agent_display_is_a_permission_denied_naming_it():
    h = harness(grants={"livechat.read", "users.read", "livechat.write"})
    started = h.start_room(external_visitor(h)["id"])
    h.fire("livechat.room_started", started)
    with pytest.raises(PermissionDenied, match=r"livechat\.agent-display"):
        h.deliver()


def test_missing_app_user_surfaces_as_not_found():
    # If the host had not created the app user, the look-up says so rather than guessing.
    h = harness()
    h.server.users[h.app_user["id"]]["username"] = "renamed"
    with pytest.raises(NotFound):
        h.fire("livechat.room_started", h.start_room(external_visitor(h)["id"]))
