"""Chatbot Handover, run through the app-author harness (no host needed)."""
from pathlib import Path

import pytest

from sandbox.errors import Conflict, NotFound, PermissionDenied
from sandbox.harness import AppHarness

APP_DIR = Path(__file__).resolve().parent.parent
BOT_GREETING = "Hello from the bot"


def installed(**kw):
    """The operator made a Bot and a Support department; installing the app creates its bot
    account and puts it into Bot (found by name)."""
    h = AppHarness.from_dir(APP_DIR, settings={"greeting": BOT_GREETING}, **kw)
    h.add_department("Bot")
    h.add_department("Support")
    h.install()
    return h


def bot_of(h):
    return h.server.users_get_by_username("chatbot-assistant")


def bot_serving_a_visitor(**kw):
    """A visitor starts a conversation in Bot; routing gives it to the bot account, and the
    bot greets them."""
    h = installed(**kw)
    human = h.add_user("hana", "Hana", agent=True, departments=["Support"])
    started = h.start_room(h.add_visitor(name="Vera")["id"], "Bot")
    room_id = started["room"]["id"]
    assert h.server.rooms[room_id]["served_by"] == bot_of(h)["id"]
    h.deliver()  # agent_assigned -> the greeting (and its own message.sent, ignored)
    h.calls.clear()
    return h, room_id, human


def bot_texts(h):
    return [c["text"] for c in h.calls_to("messages.send_as_user")]


def test_install_creates_its_bot_account_and_puts_it_into_the_bot_department():
    h = installed()
    bot = bot_of(h)
    assert bot["type"] == "bot" and bot["created_by_app"] == h.app_id
    assert h.server.agents[bot["id"]]["status"] == "available"
    assert h.calls_to("livechat.get_department") == [{"department": "Bot"}]
    bot_dep = h.server.department("Bot")
    assert bot_dep["agents"] == [bot["id"]]
    assert h.calls_to("livechat.add_department_agent") == [
        {"department": bot_dep["id"], "user_id": bot["id"]}]
    assert h.stored("bot_user_id") == bot["id"]
    # The app user is not an agent: the bot account serves.
    assert h.app_user["id"] not in h.server.agents


def test_setting_up_again_changes_nothing():
    h = installed()
    h.calls.clear()
    h.enable()
    assert "users.create" not in h.actions()
    assert "livechat.add_department_agent" not in h.actions()
    assert len([u for u in h.server.users.values() if u["type"] == "bot"]) == 1


def test_a_missing_bot_department_is_named():
    h = AppHarness.from_dir(APP_DIR, settings={"bot_department": "Robots"})
    with pytest.raises(NotFound, match="Robots"):
        h.install()


def test_greets_as_its_bot_when_routed_a_conversation():
    h = installed()
    h.start_room(h.add_visitor()["id"], "Bot")
    h.deliver()
    (greeting,) = h.server.messages
    assert greeting["text"] == BOT_GREETING
    assert greeting["sender"]["id"] == bot_of(h)["id"] != h.app_user["id"]
    assert greeting["app_id"] == h.app_id
    assert "messages.send" not in h.actions()


def test_answers_from_its_rules_as_its_bot():
    h, room_id, _ = bot_serving_a_visitor()
    result = h.fire("message.sent", h.visitor_says(room_id, "When are you OPEN?"))
    assert result == {"answered": True}
    assert h.calls_to("messages.send_as_user") == [{
        "room_id": room_id, "user_id": bot_of(h)["id"],
        "text": "We're open Monday to Friday, 9:00 to 17:00."}]


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
    assert h.server.rooms[room_id]["served_by"] == bot_of(h)["id"]


def test_ignores_rooms_it_does_not_serve():
    h, _, human = bot_serving_a_visitor()
    other = h.start_room(h.add_visitor(name="Olga")["id"], "Support")["room"]["id"]
    assert h.server.rooms[other]["served_by"] == human["id"]
    assert h.fire("message.sent", h.visitor_says(other, "human")) is None
    assert h.calls == []


def test_never_adopts_an_account_it_did_not_create():
    """A person's account that happens to be named chatbot-assistant is not the bot's."""
    h = AppHarness.from_dir(APP_DIR)
    h.add_department("Bot")
    h.add_user("chatbot-assistant", "Someone Else")
    with pytest.raises(Conflict):
        h.install()
    assert h.calls_to("livechat.add_agent") == []


def test_withheld_send_as_permission_is_a_permission_denied_naming_it():
    asked = AppHarness.from_dir(APP_DIR).grants
    h = installed(grants=asked - {"messages.send-as-own-users"})
    h.start_room(h.add_visitor()["id"], "Bot")
    with pytest.raises(PermissionDenied, match=r"messages\.send-as-own-users"):
        h.deliver()


def test_withheld_transfer_permission_is_a_permission_denied():
    asked = AppHarness.from_dir(APP_DIR).grants
    h, room_id, _ = bot_serving_a_visitor(grants=asked - {"livechat.write"})
    with pytest.raises(PermissionDenied, match=r"livechat\.write"):
        h.fire("message.sent", h.visitor_says(room_id, "human please"))
