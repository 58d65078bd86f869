"""Proxy Agent: the app's own user serves the room; the visitor sees the external agent.

An external agent system answers some conversations. Instead of creating an account per
external agent (what agent-sync does), this app serves those rooms with its own user
(`app.proxy-agent`, created by the host at install and made a livechat agent by the operator)
and uses agent display to show the visitor who they are really talking to.

A conversation is meant for the external system when the room, or else the visitor, carries
the custom field `externalAgentName` (optionally `externalAgentAvatar`).

On livechat.room_started: take such a room if it is still queued. (If routing already gave it
to this app's user, or to a human, there is nothing to take.)
On livechat.agent_assigned to this app's user (after our take, a transfer, or routing):
set the room's agent display, and relay the external agent's greeting. Every message the app
relays carries the external agent's name and avatar (`relay_message`, Rocket.Chat's per-message
`alias`/`avatar`), so the visitor never sees "Proxy Agent"; staff and the audit still do.
"""
from stockade import App


def external_agent(room, visitor):
    """(name, avatar url) of the external agent, from the room's or the visitor's fields."""
    for source in (room, visitor):
        fields = source.get("custom_fields") or {}
        if fields.get("externalAgentName"):
            return fields["externalAgentName"], fields.get("externalAgentAvatar")
    return None, None


class ProxyAgent(App):
    def __init__(self):
        self.my_user_id = None  # looked up once; the app instance lives as long as the child

    def me(self, ctx):
        """This app's own user id. The host names app users `app.<app id>`."""
        if self.my_user_id is None:
            self.my_user_id = ctx.users.get_by_username("app." + ctx.app_id)["id"]
        return self.my_user_id

    def on_livechat_room_started(self, ctx, event):
        name = external_agent(event["room"], event.get("visitor") or {})[0]
        if name is None:
            return None  # not for the external system
        room_id = event["room"]["id"]
        room = ctx.livechat.get_room(room_id)  # routing may have served it since it started
        if room["open"] and room["served_by"] is None:
            ctx.livechat.take_room(room_id, self.me(ctx))
            return {"taken": room_id}
        return None

    def on_livechat_agent_assigned(self, ctx, event):
        room = event["room"]
        if event["agent"]["username"] != "app." + ctx.app_id or not room["open"]:
            return None  # someone else serves it: their room, not ours to label
        visitor = ctx.livechat.get_visitor(room["visitor_id"])
        name, avatar = external_agent(room, visitor)
        name = name or ctx.settings.get("fallback_name") or "Support team"
        avatar = avatar or ctx.settings.get("default_avatar_url") or None
        ctx.livechat.set_agent_display(room["id"], name, avatar)
        self.relay(ctx, room["id"], f"Hi, this is {name}. How can I help?", name, avatar)
        return {"display": name}

    def relay(self, ctx, room_id, text, name, avatar):
        """Relay the external agent's words into the room, shown under their display."""
        ctx.livechat.relay_message(room_id, text, name, avatar)
