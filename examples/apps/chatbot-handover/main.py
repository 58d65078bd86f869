"""Chatbot Handover: a small rule-based bot that knows when to hand over to a human.

The bot speaks for itself (RASA style): the app creates a bot account of its own
(`chatbot-assistant`, type bot) when it is installed or enabled, makes it an available livechat
agent and puts it into the department named by `bot_department` (found by name, default
`Bot`), so routing gives that department's conversations to the bot. Every reply is sent AS
that bot account (`ctx.messages.send_as`, permission `messages.send-as-own-users`): the visitor
and staff see the bot's name, and the message records this app as the one that sent it.

On livechat.agent_assigned to the bot: greet the visitor. On each message.sent in a room the
bot serves:
  * a visitor asking for a "human", an "agent" or a "person" is transferred at once to the
    department named by the `handover_department` setting;
  * otherwise the bot answers from its rules; the second question it cannot answer in a
    room also hands over.
Loop guard: only messages written by the visitor are answered, never the bot's own (the
host delivers message.sent for the app's own messages too) nor a human agent's.
"""
import re

from stockade import App, Conflict, NotFound

BOT_USERNAME = "chatbot-assistant"
AGENT_ROLE = "livechat-agent"

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

    # -- the bot account: created, made an agent, put into its department ----------------------

    def on_install(self, ctx, event):
        return self.set_up(ctx)

    def on_enable(self, ctx, event):
        return self.set_up(ctx)

    def on_update(self, ctx, event):
        return self.set_up(ctx)

    def on_settings_changed(self, ctx, event):
        return self.set_up(ctx)

    def set_up(self, ctx):
        """The bot account, an available agent in the bot department. Each step is skipped
        when done, so running it at every install, enable and settings change is safe."""
        bot = self.bot_account(ctx)
        if AGENT_ROLE not in bot["roles"]:
            ctx.livechat.add_agent(bot["id"])
        ctx.livechat.set_agent_status(bot["id"], "available")
        # Found by name: the operator names the department, never pastes its id.
        department = ctx.livechat.get_department(ctx.settings.get("bot_department") or "Bot")
        if bot["id"] not in department["agents"]:
            ctx.livechat.add_department_agent(department["id"], bot["id"])
        return {"bot": bot["id"], "department": department["id"]}

    def bot_account(self, ctx):
        """The bot account this app created, created now when there is none."""
        known = self.my_id(ctx)
        if known is not None:
            try:
                return ctx.users.get(known)
            except NotFound:
                pass  # removed on the server since: make it again
        name = ctx.settings.get("bot_name") or "Virtual Assistant"
        try:
            bot = ctx.users.create(BOT_USERNAME, name, type="bot")
        except Conflict:
            # Ours from an earlier install whose stored data went at uninstall (users kept)?
            bot = ctx.users.get_by_username(BOT_USERNAME)
            if bot.get("created_by_app") != ctx.app_id:
                raise  # someone else's account: never adopt it
        self.bot_id = bot["id"]
        ctx.store.put("bot_user_id", bot["id"])
        return bot

    def my_id(self, ctx):
        """The bot's user id, remembered across restarts of the app in its store."""
        if self.bot_id is None:
            self.bot_id = stored(ctx, "bot_user_id", None)
        return self.bot_id

    def say(self, ctx, room_id, text):
        """Speak as the bot account, never as the app user."""
        return ctx.messages.send_as(self.my_id(ctx), room_id, text)

    # -- conversations ----------------------------------------------------------------------------

    def on_livechat_agent_assigned(self, ctx, event):
        me = self.my_id(ctx)
        if me is None or event["agent"]["user_id"] != me:
            return None  # routed to someone else
        self.say(ctx, event["room"]["id"], ctx.settings.get("greeting") or "Hello!")
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
            self.say(ctx, room["id"], answer)
            return {"answered": True}
        misses = self.count_miss(ctx, room["id"])
        if misses >= MAX_MISSES:
            return self.hand_over(ctx, room["id"], "no answer twice")
        self.say(ctx, room["id"], SORRY)
        return {"answered": False, "misses": misses}

    def count_miss(self, ctx, room_id):
        key = "misses:" + room_id
        misses = stored(ctx, key, 0) + 1
        ctx.store.put(key, misses, {"kind": "room", "id": room_id})
        return misses

    def hand_over(self, ctx, room_id, why):
        department = ctx.settings.get("handover_department")
        self.say(ctx, room_id, HANDING_OVER)
        try:
            ctx.livechat.transfer_room(room_id, department=department)
        except (Conflict, NotFound) as exc:
            # Nobody free there (or no such department): stay with the visitor and say so.
            self.say(ctx, room_id, NOBODY_FREE)
            return {"handover": None, "why": why, "error": exc.message}
        ctx.store.delete("misses:" + room_id)
        return {"handover": department, "why": why}
