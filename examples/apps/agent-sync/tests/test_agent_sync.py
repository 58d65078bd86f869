"""Agent Sync, run through the app-author harness (no host needed)."""
from pathlib import Path

import pytest

from sandbox.errors import NotFound, PermissionDenied, QuotaExceeded
from sandbox.harness import AppHarness

APP_DIR = Path(__file__).resolve().parent.parent


def routed_to(h, external_id, name=None):
    """A visitor the external routing system tagged with the agent that should serve them."""
    fields = {"externalAgentId": external_id}
    if name:
        fields["externalAgentName"] = name
    visitor = h.add_visitor(name="Vera", custom_fields=fields)
    return h.start_room(visitor["id"])


def test_creates_the_missing_agent_and_gives_it_the_room():
    h = AppHarness.from_dir(APP_DIR)
    started = routed_to(h, "A-17", "Alice External")
    room_id = started["room"]["id"]

    result = h.fire("livechat.room_started", started)

    user = h.server.users_get_by_username("ext-a-17")
    assert result == {"room": room_id, "agent": user["id"]}
    assert user["type"] == "bot"  # the user_type setting's default
    assert user["name"] == "Alice External"
    assert user["custom_fields"] == {"externalId": "A-17"}
    assert user["created_by_app"] == "agent-sync"
    assert "bot" in user["roles"] and "livechat-agent" in user["roles"]
    assert h.server.rooms[room_id]["served_by"] == user["id"]
    # A bot account gets the bot role at creation, so no separate roles.assign is needed.
    assert h.actions() == [
        "users.find_by_field", "users.create", "livechat.add_agent",
        "livechat.get_room", "livechat.take_room",
    ]


def test_reuses_the_agent_found_by_custom_field():
    h = AppHarness.from_dir(APP_DIR)
    h.fire("livechat.room_started", routed_to(h, "A-17"))
    agent_id = h.server.users_get_by_username("ext-a-17")["id"]
    h.calls.clear()

    second = routed_to(h, "A-17")
    # The mirror is a bot agent, routable while offline: routing already gave it the room.
    assert h.server.rooms[second["room"]["id"]]["served_by"] == agent_id
    h.fire("livechat.room_started", second)

    # Found, already set up and already serving: no account, role, agent or room changes.
    assert h.actions() == ["users.find_by_field", "livechat.get_room"]


def test_user_type_setting_creates_ordinary_users_and_gives_them_the_bot_role():
    h = AppHarness.from_dir(APP_DIR, settings={"user_type": "user"})
    h.fire("livechat.room_started", routed_to(h, "b2"))
    user = h.server.users_get_by_username("ext-b2")
    assert h.calls_to("users.create")[0]["type"] == "user"
    assert h.calls_to("roles.assign") == [{"user_id": user["id"], "role": "bot"}]
    assert sorted(user["roles"]) == ["bot", "livechat-agent", "user"]


def test_transfers_a_room_that_routing_already_gave_to_someone_else():
    h = AppHarness.from_dir(APP_DIR)
    human = h.add_user("hana", agent=True)  # available: routing picks her at start
    started = routed_to(h, "A-17")
    room_id = started["room"]["id"]
    assert h.server.rooms[room_id]["served_by"] == human["id"]

    h.fire("livechat.room_started", started)

    mirror = h.server.users_get_by_username("ext-a-17")
    assert h.calls_to("livechat.transfer_room") == [{"room_id": room_id, "agent_id": mirror["id"]}]
    assert h.server.rooms[room_id]["served_by"] == mirror["id"]


def test_a_conversation_without_an_external_agent_is_left_to_normal_routing():
    h = AppHarness.from_dir(APP_DIR)
    started = h.start_room(h.add_visitor(name="Vic")["id"])
    assert h.fire("livechat.room_started", started) is None
    assert h.calls == []


def test_quota_full_falls_back_to_the_default_agent_and_queues_the_room():
    h = AppHarness.from_dir(APP_DIR, settings={"default_agent_username": "duty"})
    duty = h.add_user("duty", "Duty Officer", agent=True, status="not-available")
    started = routed_to(h, "A-99")
    room_id = started["room"]["id"]
    h.fail_next("users.create", QuotaExceeded("users.create: 3 per 10m used; next at 12:00"))

    result = h.fire("livechat.room_started", started)

    assert result == {"room": room_id, "queued": True, "fallback": duty["id"]}
    assert h.server.rooms[room_id]["served_by"] == duty["id"]
    assert h.stored("queued:" + room_id) == {
        "room_id": room_id, "external_id": "A-99",
        "reason": "users.create: 3 per 10m used; next at 12:00", "fallback": duty["id"],
    }
    assert ("users.create", "quota_exceeded") in h.errors
    # Nothing was created: no agent or role calls after the refusal.
    assert "livechat.add_agent" not in h.actions() and "roles.assign" not in h.actions()


def test_quota_full_without_a_fallback_keeps_the_room_queued():
    h = AppHarness.from_dir(APP_DIR)
    h.set_quota("users.create", 1)
    h.fire("livechat.room_started", routed_to(h, "first"))
    started = routed_to(h, "second")

    result = h.fire("livechat.room_started", started)

    room_id = started["room"]["id"]
    assert result == {"room": room_id, "queued": True, "fallback": None}
    assert h.stored("queued:" + room_id)["external_id"] == "second"
    with pytest.raises(NotFound):
        h.server.users_get_by_username("ext-second")


def test_an_unknown_fallback_agent_is_recorded_not_fatal():
    h = AppHarness.from_dir(APP_DIR, settings={"default_agent_username": "nobody"})
    h.fail_next("users.create", QuotaExceeded("full"))
    started = routed_to(h, "x")
    h.fire("livechat.room_started", started)
    record = h.stored("queued:" + started["room"]["id"])
    assert record["fallback"] is None
    assert "fallback failed: no user with username 'nobody'" in record["reason"]


def test_a_set_up_interrupted_by_the_role_quota_resumes_next_time():
    h = AppHarness.from_dir(APP_DIR, settings={"user_type": "user"})
    h.fail_next("roles.assign", QuotaExceeded("roles.assign: 20 per 1h used"))
    first = routed_to(h, "A-5")
    assert h.fire("livechat.room_started", first)["queued"] is True
    mirror = h.server.users_get_by_username("ext-a-5")
    assert "bot" not in mirror["roles"]

    h.close_room(first["room"]["id"], by_visitor=True)
    h.fire("livechat.room_started", routed_to(h, "A-5"))

    assert "bot" in h.server.users_get(mirror["id"])["roles"]
    assert len(h.calls_to("users.create")) == 1


def test_repairs_its_own_user_whose_field_was_removed():
    h = AppHarness.from_dir(APP_DIR)
    h.fire("livechat.room_started", routed_to(h, "A-3"))
    mirror = h.server.users_get_by_username("ext-a-3")
    h.server.users_set_custom_fields(mirror["id"], {"externalId": None})  # an admin edited it

    h.fire("livechat.room_started", routed_to(h, "A-3"))

    assert h.calls_to("users.set_custom_fields") == [
        {"user_id": mirror["id"], "fields": {"externalId": "A-3"}}]
    assert h.server.users_get(mirror["id"])["custom_fields"] == {"externalId": "A-3"}


def test_withheld_user_creation_surfaces_as_permission_denied():
    asked = AppHarness.from_dir(APP_DIR).grants
    h = AppHarness.from_dir(APP_DIR, grants=asked - {"users.create"})
    with pytest.raises(PermissionDenied, match=r"users\.create"):
        h.fire("livechat.room_started", routed_to(h, "A-1"))
    assert h.errors == [("users.create", "permission_denied")]


def test_records_assignments_and_unassignments():
    h = AppHarness.from_dir(APP_DIR)
    h.fire("livechat.room_started", routed_to(h, "A-17"))
    h.deliver()  # the agent_assigned event the take caused reaches the app, as from the host
    room_id = h.server.livechat_list_rooms()[0]["id"]
    mirror = h.server.users_get_by_username("ext-a-17")
    assert h.stored("assignment:" + room_id) == {
        "room_id": room_id, "agent_id": mirror["id"],
        "history": [{"event": "assigned", "agent_id": mirror["id"], "username": "ext-a-17"}],
    }

    other = h.add_user("otto", agent=True)
    h.server.livechat_transfer_room(room_id, agent_id=other["id"])  # an operator moves it
    h.deliver()

    entry = h.stored("assignment:" + room_id)
    assert entry["agent_id"] == other["id"]
    assert [e["event"] for e in entry["history"]] == ["assigned", "unassigned", "assigned"]
    found = h.server.persistence_find({"kind": "room", "id": room_id})
    assert [f["key"] for f in found] == ["assignment:" + room_id]
