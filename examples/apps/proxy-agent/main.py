"""Proxy Agent: a live-agent bridge (Salesforce style). The app's own user is the livechat agent;
the visitor sees, on the room and on every message, the external agent who really answers.

An external agent system (Salesforce Live Agent, Zendesk, ...) answers some conversations.
Instead of creating an account per external agent (what agent-sync does), this app serves those
rooms with its own user (`app.proxy-agent`). The manifest declares that user a livechat agent in
the `Salesforce` department (`app_user_agent` on `livechat.agents`): the operator sees it at
install and the host does it at enable, so routing gives that department's rooms to the app.

A conversation names its external agent with the custom field `externalAgentName` (optionally
`externalAgentAvatar`) on the room, or else on the visitor.

On livechat.room_started: take such a room if it is still queued (routing did not pick the app
user, e.g. it is not available). If routing already gave it to someone, nothing to take.
On livechat.agent_assigned to this app's user: set the room's agent display and relay the
external agent's greeting.
On message.sent from the visitor in a room this app's user serves: forward the text to the
external system (`live_agent_url`, over the `http` permission) and relay each reply it
answers with. Every relayed message carries the external agent's name and avatar
(`relay_message`, Rocket.Chat's per-message `alias`/`avatar`), so the visitor never sees
"Proxy Agent"; staff and the audit still see the app user as the sender.
"""
import json

from stockade import App, QuotaExceeded, Timeout

MAX_REPLIES = 5  # replies relayed per visitor message: an external system gone wild is capped


def external_agent(room, visitor):
    """(name, avatar url) of the external agent, from the room's or the visitor's fields."""
    for source in (room, visitor):
        fields = source.get("custom_fields") or {}
        if fields.get("externalAgentName"):
            return fields["externalAgentName"], fields.get("externalAgentAvatar")
    return None, None


class ProxyAgent(App):
    def display(self, ctx, room, visitor=None):
        """The (name, avatar) the visitor sees for this room: the room's agent display once
        set, else the external agent's fields, else the fallback settings."""
        shown = room.get("agent_display")
        if shown:
            return shown["name"], shown.get("avatar_url")
        if visitor is None:
            visitor = ctx.livechat.get_visitor(room["visitor_id"])
        name, avatar = external_agent(room, visitor)
        name = name or ctx.settings.get("fallback_name") or "Support team"
        avatar = avatar or ctx.settings.get("default_avatar_url") or None
        return name, avatar

    def on_livechat_room_started(self, ctx, event):
        name = external_agent(event["room"], event.get("visitor") or {})[0]
        if name is None:
            return None  # not for the external system
        room_id = event["room"]["id"]
        room = ctx.livechat.get_room(room_id)  # routing may have served it since it started
        if room["open"] and room["served_by"] is None:
            ctx.livechat.take_room(room_id, ctx.app_user_id)
            return {"taken": room_id}
        return None

    def on_livechat_agent_assigned(self, ctx, event):
        room = event["room"]
        if event["agent"]["user_id"] != ctx.app_user_id or not room["open"]:
            return None  # someone else serves it: their room, not ours to label
        name, avatar = self.display(ctx, dict(room, agent_display=None))
        ctx.livechat.set_agent_display(room["id"], name, avatar)
        ctx.livechat.relay_message(room["id"], f"Hi, this is {name}. How can I help?",
                                   name, avatar)
        return {"display": name}

    def on_message_sent(self, ctx, event):
        message = event["message"]
        room = event["room"]
        # Only the visitor's words go to the external agent: never our own relayed replies
        # (the host delivers those to us too) nor a staff member's.
        if message["sender"]["type"] != "visitor":
            return None
        if room["served_by"] != ctx.app_user_id or not room["open"]:
            return None
        name, avatar = self.display(ctx, room)
        replies = self.ask_external_agent(ctx, room, name, message["text"])
        for reply in replies[:MAX_REPLIES]:
            agent = reply.get("agent") or {}
            ctx.livechat.relay_message(room["id"], reply["text"], agent.get("name") or name,
                                       agent.get("avatar") or avatar)
        return {"relayed": min(len(replies), MAX_REPLIES)}

    def ask_external_agent(self, ctx, room, name, text):
        """POST the visitor's message to the external system; its replies, or a holding line
        when it does not answer (the visitor is never left without a word)."""
        body = json.dumps({"room_id": room["id"], "agent": name, "text": text})
        try:
            response = ctx.http.post(ctx.settings["live_agent_url"], body,
                                     headers={"Content-Type": "application/json"})
        except (Timeout, QuotaExceeded):
            return [{"text": "One moment please."}]
        if not 200 <= response["status"] < 300:
            return [{"text": "One moment please."}]
        try:
            doc = json.loads(response["body"])
        except ValueError:
            return [{"text": "One moment please."}]
        replies = doc.get("messages") if isinstance(doc, dict) else None
        if not isinstance(replies, list):
            return []
        return [r for r in replies if isinstance(r, dict) and isinstance(r.get("text"), str)
                and r["text"]]
