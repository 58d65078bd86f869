"""Chatbot Handover: a small rule-based bot that knows when to hand over to a human.

The bot is this app's own user (`app.chatbot-handover`), made a livechat agent by the
operator, so routing gives it conversations. It learns its own user id from the
livechat.agent_assigned event that routes a room to it (the host names app users
`app.<app id>`), greets the visitor, then on each message.sent in a room it serves:
  * a visitor asking for a "human", an "agent" or a "person" is transferred at once to the
    department named by the `handover_department` setting;
  * otherwise the bot answers from its rules; the second question it cannot answer in a
    room also hands over.
Loop guard: only messages written by the visitor are answered, never the bot's own (the
host delivers message.sent for the app's own messages too) nor a human agent's.
"""
import re

from stockade import App, Conflict, NotFound

HUMAN_WORDS = ("human", "agent", "person", "humans", "agents", "people")
MAX_MISSES = 2
RULES = (
    (("hours", "open", "opening", "closed"), "We're open Monday to Friday, 9:00 to 17:00."),
    (("price", "prices", "cost", "costs", "pricing"), "Plans start at 10 EUR a month."),
    (("delivery", "shipping", "ship", "deliver"), "Orders ship within 2 working days."),
    (("thanks", "thank", "thx"), "You're welcome! Anything else?"),
    (("hello", "hi", "hey"), "Hello! What can I help you with?"),
)
SORRY = "Sorry, I didn't understand that. Could you rephrase? Type 'human' to talk to a person."
HANDING_OVER = "Let me connect you with a colleague; one moment please."
NOBODY_FREE = "All our colleagues are busy right now. I'm still here if I can help."


def stored(ctx, key, default):
    """The value stored under `key`, or `default` when there is none.

    The host raises NotFound for a missing key (a stored None reads as missing); a None
    answer is treated the same, so the app also runs under hosts that return None.
    """
    try:
        value = ctx.store.get(key)
    except NotFound:
        return default
    return default if value is None else value


def answer_for(words):
    """The first rule whose keywords appear in the message, or None."""
    for keywords, answer in RULES:
        if any(w in keywords for w in words):
            return answer
    return None


class ChatbotHandover(App):
    def __init__(self):
        self.bot_id = None

    def my_id(self, ctx):
        """The bot's user id, remembered across restarts of the app in its store."""
        if self.bot_id is None:
            self.bot_id = stored(ctx, "bot_user_id", None)
        return self.bot_id

    def on_livechat_agent_assigned(self, ctx, event):
        agent = event["agent"]
        if agent["username"] != "app." + ctx.app_id:
            return None  # routed to someone else
        if self.my_id(ctx) != agent["user_id"]:
            self.bot_id = agent["user_id"]
            ctx.store.put("bot_user_id", agent["user_id"])
        ctx.messages.send(event["room"]["id"], ctx.settings.get("greeting") or "Hello!")
        return {"greeted": event["room"]["id"]}

    def on_message_sent(self, ctx, event):
        message = event["message"]
        room = event["room"]
        # Loop guard: answer visitors only; never our own messages or a human agent's.
        if message["sender"]["type"] != "visitor" or message.get("app_id") == ctx.app_id:
            return None
        me = self.my_id(ctx)
        if me is None or room["served_by"] != me or not room["open"]:
            return None  # not a conversation the bot serves
        words = re.findall(r"[a-z']+", message["text"].lower())
        if any(w in HUMAN_WORDS for w in words):
            return self.hand_over(ctx, room["id"], "asked for a person")
        answer = answer_for(words)
        if answer is not None:
            ctx.messages.send(room["id"], answer)
            return {"answered": True}
        misses = self.count_miss(ctx, room["id"])
        if misses >= MAX_MISSES:
            return self.hand_over(ctx, room["id"], "no answer twice")
        ctx.messages.send(room["id"], SORRY)
        return {"answered": False, "misses": misses}

    def count_miss(self, ctx, room_id):
        key = "misses:" + room_id
        misses = stored(ctx, key, 0) + 1
        ctx.store.put(key, misses, {"kind": "room", "id": room_id})
        return misses

    def hand_over(self, ctx, room_id, why):
        department = ctx.settings.get("handover_department")
        ctx.messages.send(room_id, HANDING_OVER)
        try:
            ctx.livechat.transfer_room(room_id, department=department)
        except (Conflict, NotFound) as exc:
            # Nobody free there (or no such department): stay with the visitor and say so.
            ctx.messages.send(room_id, NOBODY_FREE)
            return {"handover": None, "why": why, "error": exc.message}
        ctx.store.delete("misses:" + room_id)
        return {"handover": department, "why": why}
