"""Chatbot Handover, run through the app-author harness (no host needed)."""
from pathlib import Path

import pytest

from sandbox.errors import PermissionDenied
from sandbox.harness import AppHarness

APP_DIR = Path(__file__).resolve().parent.parent
BOT_GREETING = "Hello from the bot"


def bot_serving_a_visitor(**kw):
    """The operator made the bot user an agent and staffed a Support department; a visitor
    starts a conversation, routing gives it to the bot, and the bot greets them."""
    h = AppHarness.from_dir(APP_DIR, settings={"greeting": BOT_GREETING}, **kw)
    h.add_department("Support")
    h.make_agent(h.app_user["id"])
    # Both available and idle: routing breaks the tie on username, so the bot gets the room.
    human = h.add_user("hana", "Hana", agent=True, departments=["Support"])
    started = h.start_room(h.add_visitor(name="Vera")["id"])
    room_id = started["room"]["id"]
    assert h.server.rooms[room_id]["served_by"] == h.app_user["id"]
    h.deliver()  # agent_assigned -> the greeting (and its own message.sent, ignored)
    h.calls.clear()
    return h, room_id, human


def bot_texts(h):
    return [c["text"] for c in h.calls_to("messages.send")]


def test_greets_when_routed_a_conversation():
    h = AppHarness.from_dir(APP_DIR, settings={"greeting": BOT_GREETING})
    h.make_agent(h.app_user["id"])
    h.start_room(h.add_visitor()["id"])
    h.deliver()
    assert bot_texts(h) == [BOT_GREETING]
    assert h.stored("bot_user_id") == h.app_user["id"]


def test_answers_from_its_rules():
    h, room_id, _ = bot_serving_a_visitor()
    result = h.fire("message.sent", h.visitor_says(room_id, "When are you OPEN?"))
    assert result == {"answered": True}
    assert bot_texts(h) == ["We're open Monday to Friday, 9:00 to 17:00."]


def test_never_answers_its_own_messages():
    h, room_id, _ = bot_serving_a_visitor()
    h.visitor_says(room_id, "hello")
    delivered = h.deliver()  # the visitor's message, then the bot's own answer
    assert [name for name, _ in delivered] == ["message.sent", "message.sent"]
    assert delivered[1][1] is None  # its own message: ignored
    assert bot_texts(h) == ["Hello! What can I help you with?"]


def test_a_visitor_asking_for_a_human_is_transferred():
    h, room_id, human = bot_serving_a_visitor()
    result = h.fire("message.sent", h.visitor_says(room_id, "Can I talk to a person please"))
    assert result == {"handover": "Support", "why": "asked for a person"}
    assert h.calls_to("livechat.transfer_room") == [{"room_id": room_id,
                                                      "department": "Support"}]
    assert h.server.rooms[room_id]["served_by"] == human["id"]
    # The human's room now: the bot stays quiet.
    assert h.fire("message.sent", h.visitor_says(room_id, "hello?")) is None


def test_hands_over_after_two_unanswered_questions():
    h, room_id, human = bot_serving_a_visitor()
    first = h.fire("message.sent", h.visitor_says(room_id, "What is the meaning of life"))
    assert first == {"answered": False, "misses": 1}
    assert "livechat.transfer_room" not in h.actions()
    second = h.fire("message.sent", h.visitor_says(room_id, "Quantum refund policy?"))
    assert second["handover"] == "Support" and second["why"] == "no answer twice"
    assert h.server.rooms[room_id]["served_by"] == human["id"]
    with pytest.raises(KeyError):
        h.stored("misses:" + room_id)


def test_stays_with_the_visitor_when_nobody_is_free():
    h, room_id, human = bot_serving_a_visitor()
    h.server.users_deactivate(human["id"])  # the only human left
    result = h.fire("message.sent", h.visitor_says(room_id, "agent!"))
    assert result["handover"] is None
    assert "no agent available" in result["error"]
    assert bot_texts(h)[-1].startswith("All our colleagues are busy right now.")
    assert h.server.rooms[room_id]["served_by"] == h.app_user["id"]


def test_ignores_rooms_it_does_not_serve():
    h, _, human = bot_serving_a_visitor()
    # Two open rooms: routing gives the second to the least busy agent, the human.
    other = h.start_room(h.add_visitor(name="Olga")["id"])["room"]["id"]
    assert h.server.rooms[other]["served_by"] == human["id"]
    assert h.fire("message.sent", h.visitor_says(other, "human")) is None
    assert h.calls == []


def test_withheld_transfer_permission_is_a_permission_denied():
    asked = AppHarness.from_dir(APP_DIR).grants
    h, room_id, _ = bot_serving_a_visitor(grants=asked - {"livechat.write"})
    with pytest.raises(PermissionDenied, match=r"livechat\.write"):
        h.fire("message.sent", h.visitor_says(room_id, "human please"))
