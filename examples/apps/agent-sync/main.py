"""Agent Sync: mirror the agent an external routing system chose, and give it the room.

Where the external agent comes from: the custom field `externalAgentId` (and optionally
`externalAgentName`) on the room, or else on the visitor. The embedded server's rooms start
without custom fields, so in practice the website widget tags the visitor when it registers
them; a room field, when a server sets one, wins.

On livechat.room_started:
  1. find the user whose custom field `externalId` equals that id;
  2. if none, create it (type from the `user_type` setting) with the field set, make it a
     livechat agent and give it the `bot` role (a bot agent stays routable while offline);
  3. assign the room to it: take it if queued, transfer it if routing gave it to someone else.
If the user-creation quota is full (QuotaExceeded), the room goes to the fallback agent named
by `default_agent_username` and a `queued:<room id>` record is kept for a later retry.

On livechat.agent_assigned / agent_unassigned: keep `assignment:<room id>` up to date.
"""
import re

from stockade import App, Conflict, NotFound, QuotaExceeded

FIELD = "externalId"
BOT_ROLE = "bot"
AGENT_ROLE = "livechat-agent"
MAX_HISTORY = 20


def external_agent(event):
    """(id, name) of the external agent chosen for this conversation, or (None, None)."""
    for source in (event["room"], event.get("visitor") or {}):
        fields = source.get("custom_fields") or {}
        if fields.get("externalAgentId"):
            return fields["externalAgentId"], fields.get("externalAgentName")
    return None, None


def username_for(external_id):
    """`ext-<id>`, lower-case letters, digits and '-' only (the policy's username pattern)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", external_id.lower()).strip("-")[:40]
    return "ext-" + (slug or "agent")


def room_key(room_id):
    return {"kind": "room", "id": room_id}


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


class AgentSync(App):
    def on_livechat_room_started(self, ctx, event):
        room_id = event["room"]["id"]
        external_id, name = external_agent(event)
        if external_id is None:
            return None  # not routed by the external system: normal routing applies
        try:
            agent = self.mirror(ctx, external_id, name)
        except QuotaExceeded as exc:
            return self.fall_back(ctx, room_id, external_id, exc.message)
        self.assign(ctx, room_id, agent["id"])
        return {"room": room_id, "agent": agent["id"]}

    # -- the external agent's mirror user -------------------------------------------------

    def mirror(self, ctx, external_id, name):
        """The user standing for this external agent, created and set up when missing."""
        found = ctx.users.find_by_field(FIELD, external_id)
        if found:
            user = found[0]
        else:
            user = self.create(ctx, external_id, name)
        if user.get("created_by_app") == ctx.app_id:
            # Only touch accounts this app made (the policy refuses others anyway); each step
            # is skipped when done, so a set-up interrupted by a quota resumes next time.
            if AGENT_ROLE not in user["roles"]:
                ctx.livechat.add_agent(user["id"])
            if BOT_ROLE not in user["roles"]:
                ctx.roles.assign(user["id"], BOT_ROLE)
        return user

    def create(self, ctx, external_id, name):
        username = username_for(external_id)
        try:
            return ctx.users.create(
                username,
                name or ("Agent " + external_id),
                type=ctx.settings.get("user_type") or "bot",
                custom_fields={FIELD: external_id},
            )
        except Conflict:
            # The username exists: ours from before whose field was removed? Repair it.
            user = ctx.users.get_by_username(username)
            if user.get("created_by_app") != ctx.app_id:
                raise
            return ctx.users.set_custom_fields(user["id"], {FIELD: external_id})

    # -- giving the room to an agent --------------------------------------------------------

    def assign(self, ctx, room_id, agent_id):
        # The event shows the room as it started; routing may have given it to someone since.
        room = ctx.livechat.get_room(room_id)
        if room["served_by"] == agent_id or not room["open"]:
            return
        if room["served_by"] is None:
            ctx.livechat.take_room(room_id, agent_id)
        else:
            ctx.livechat.transfer_room(room_id, agent_id=agent_id)

    def fall_back(self, ctx, room_id, external_id, reason):
        """Quota full: remember the room, and hand it to the fallback agent if there is one."""
        record = {"room_id": room_id, "external_id": external_id, "reason": reason,
                  "fallback": None}
        username = ctx.settings.get("default_agent_username")
        if username:
            try:
                fallback = ctx.users.get_by_username(username)
                self.assign(ctx, room_id, fallback["id"])
                record["fallback"] = fallback["id"]
            except (NotFound, Conflict) as exc:
                record["reason"] = reason + "; fallback failed: " + exc.message
        ctx.store.put("queued:" + room_id, record, room_key(room_id))
        return {"room": room_id, "queued": True, "fallback": record["fallback"]}

    # -- keeping track of assignments -----------------------------------------------------------

    def on_livechat_agent_assigned(self, ctx, event):
        self.record(ctx, event, "assigned")

    def on_livechat_agent_unassigned(self, ctx, event):
        self.record(ctx, event, "unassigned")

    def record(self, ctx, event, what):
        room_id = event["room"]["id"]
        agent = event["agent"]
        key = "assignment:" + room_id
        entry = stored(ctx, key, {"room_id": room_id, "agent_id": None, "history": []})
        if what == "assigned":
            entry["agent_id"] = agent["user_id"]
        elif entry["agent_id"] == agent["user_id"]:
            entry["agent_id"] = None
        entry["history"].append({"event": what, "agent_id": agent["user_id"],
                                 "username": agent["username"]})
        entry["history"] = entry["history"][-MAX_HISTORY:]
        ctx.store.put(key, entry, room_key(room_id))
