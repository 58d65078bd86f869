"""Generate `docs/EVENTS.md`: each event an app can handle, its handler name, the permissions it
needs, and its payload's shape, from `policies.vocabulary.EVENTS` and `host.server.shapes`.

Run `python -m host.apps.eventdoc > docs/EVENTS.md`; `tests/cli/test_cli_author.py` fails when the
file is stale or when the vocabulary's payload keys differ from the server's payload types.
"""
from __future__ import annotations

import re
import typing
from typing import Any

from host.apps.handlers import handler_for
from host.server import shapes
from host.server.events import MAX_EVENT_DEPTH
from host.server.remote.sentcauses import MAX_SENT_CAUSES, SENT_CAUSE_KEEP_S
from policies.vocabulary import EVENTS

# The server's payload type of each post event (`host.server.shapes`), checked by the test.
PAYLOAD_TYPES: dict[str, Any] = {
    "livechat.room_started": shapes.RoomStarted,
    "livechat.room_closed": shapes.RoomClosed,
    "livechat.agent_assigned": shapes.AgentAssigned,
    "livechat.agent_unassigned": shapes.AgentAssigned,
    "livechat.room_transferred": shapes.RoomTransferred,
    "livechat.guest_saved": shapes.GuestSaved,
    "message.sent": shapes.MessageSent,
    "message.pre_send": shapes.MessageSent,
}


# Lifecycle hooks: (hook, what the event dict holds besides "hook", when, bridge calls). From
# `host.apps.installs` (each hook's detail) and `host.runtime` (when it is delivered).
LIFECYCLE: tuple[tuple[str, str, str, str], ...] = (
    ("install", "nothing", "once, at the first start of a host after install", "allowed"),
    ("enable", "nothing", "after `stockade app enable`", "allowed"),
    ("update", "`version`, `diff`", "to the new version, after an update is applied",
     "allowed"),
    ("settings_changed", "`keys` (names, never values)", "after the operator changed settings",
     "allowed"),
    ("disable", "`reason` (when one was given)", "before the child stops",
     "refused: the install is no longer enabled"),
    ("uninstall", "`users` (deactivate or keep)", "before the child stops",
     "refused: the install is gone"),
)
# How often a hook arrives (`host.supervise.lifehooks`: the row goes after the app ran it).
AT_LEAST_ONCE = """\
A hook is delivered at least once: one the app ran but the host could not record as done (its
store failed, or the host stopped at that moment) is delivered again by the next sync, or at the
next start. Write hooks so that a second run changes nothing, as the examples do (the handover
bot's `install` creates its account or finds it). A disable or uninstall hook is not repeated once
its app's child has stopped."""

# What the example apps (examples/apps/) handle, which payload fields they read, and what they
# do with them: (app, event or hook, fields read, what it does).
# tests/cli/test_cli_author.py checks it against each example's manifest and handlers.
EXAMPLE_USES: tuple[tuple[str, str, str, str], ...] = (
    ("agent-sync", "livechat.room_started",
     "`room.id`; `custom_fields.externalAgentId` / `externalAgentName` of `room`, else `visitor`",
     "finds or creates the external agent's user, makes it an agent, gives it the room"),
    ("agent-sync", "livechat.agent_assigned", "`room.id`, `agent.user_id`, `agent.username`",
     "records who serves the room"),
    ("agent-sync", "livechat.agent_unassigned", "`room.id`, `agent.user_id`, `agent.username`",
     "records who stopped serving it"),
    ("proxy-agent", "livechat.room_started",
     "`room.id`; `custom_fields.externalAgentName` of `room`, else `visitor`",
     "takes the room with its app user if routing left it queued"),
    ("proxy-agent", "livechat.agent_assigned",
     "`agent.user_id` (is it `ctx.app_user_id`?), `room.id`, `room.open`, `room.visitor_id`, "
     "`room.custom_fields`",
     "sets the room's agent display; relays the external agent's greeting under that name"),
    ("proxy-agent", "message.sent",
     "`message.sender.type` (visitor only), `message.text`, `room.served_by`, `room.open`, "
     "`room.agent_display`",
     "forwards the visitor's words to the external system; relays each reply with "
     "`relay_message` (its own relayed messages come back with `message.display` set and are "
     "ignored)"),
    ("chatbot-handover", "install, enable, update, settings_changed", "nothing",
     "creates or finds its bot account, makes it an available agent, puts it into the "
     "department named by `bot_department` (`get_department` by name)"),
    ("chatbot-handover", "livechat.agent_assigned", "`agent.user_id` (is it its bot?), `room.id`",
     "greets the visitor as its bot (`messages.send_as`)"),
    ("chatbot-handover", "message.sent",
     "`message.sender.type` (visitor only), `message.app_id` (never its own), `message.text`, "
     "`room.id`, `room.served_by` (its bot?), `room.open`",
     "answers as its bot, or transfers to `handover_department`"),
    ("crm-sync", "livechat.room_closed",
     "`room.id`, `room.visitor_id`, `room.department_id`, `room.served_by`, `room.created_at`, "
     "`room.closed_at`, `room.closed_by`, `room.close_comment`",
     "posts the transcript (with `messages.list` and the visitor) to the CRM"),
)


# What an app author must know of the depth limit (`host.server.events.MAX_EVENT_DEPTH`,
# enforced in `host.hostevents`).
LOOPS = """\
An app's write raises events as anyone's does: its message is a `message.sent` that reaches
every app handling it, the sending app's own included (as Rocket.Chat's `IPostMessageSent`
does; compare `message.app_id` with `ctx.app_id` to ignore your own). So that apps answering
each other's messages, or their own, cannot loop, the host gives each event a depth: a
person's or the system's action raises events of depth 0, and a write an app makes while it
handles an event of depth d raises events of depth d + 1. An event deeper than {depth}
reaches no app. The write that raised it stands (the app sees no error); the host counts the
stopped event and audits it once, as a `supervisor` record `loop_stopped` naming the app
whose write raised it, which also finds it in its log (`stockade app logs`: "loop stopped").
So what one person's action sets off ends after at most {writes} rounds of apps answering
one another's events. A write through the REST bridge (`ctx.rest.call`) counts as the app's
own. A lifecycle hook starts at depth 0, as a person's action does. Pre-send hooks judge every
message whatever its depth (a hook may write once more while it judges the last round's
message; the event of that write is stopped too).

The depth is kept inside the host, out of the apps' reach. Through a remote Rocket.Chat
workspace, whose events arrive by webhook and carry no depth, the host follows its own apps'
messages: a message an app sends while it handles an event gets an `_id` the host chooses
(random, before the request leaves), the host remembers that id's depth in memory, and the
message's webhook becomes an event of that depth, whether it comes before or after the
workspace's answer (`host/server/remote/sentcauses.py`). An id is taken from that record only
(never from a webhook or a message), once, and only in the room it was sent to, so no one can
lower a chain's depth by naming an id. The record holds at most {kept:,} messages, each for
{minutes:g} minutes; a message forgotten past those starts again at depth 0. The depth cannot
follow a write that leaves the host otherwise: one an app has an outside system make (its backend
calling the workspace's REST API; an `http.request` back to this host, where the policy allows
that address), the workspace's other events (a room taken, closed or forwarded by an app's
write), a message whose webhook reaches another host serving the same workspace (that host
holds no record), and a message whose webhook comes after a restart of the host that sent it.
Those start again at depth 0 and are bounded by the quotas alone."""


def _type_words(tp: Any) -> str:
    text = str(tp).replace("host.server.shapes.", "").replace("typing.", "")
    text = re.sub(r"<class '(\w+)'>", r"\1", text)
    return text.replace("NoneType", "None")


def _cell(text: str) -> str:
    """A type in a markdown table cell: `A | None` would split the cell."""
    return text.replace(" | ", " or ")


def _shape_names(events: list[str]) -> list[str]:
    """Every shape the payloads reach, in first-seen order (nested shapes after their parent)."""
    seen: list[str] = []
    queue = [t.split(" |")[0] for e in events for _, t in EVENTS[e].payload]
    while queue:
        name = queue.pop(0)
        if name in seen or not hasattr(shapes, name):
            continue
        seen.append(name)
        for tp in typing.get_type_hints(getattr(shapes, name)).values():
            for inner in re.findall(r"\b([A-Z]\w+)\b", _type_words(tp)):
                if inner not in ("None",) and hasattr(shapes, inner):
                    queue.append(inner)
    return seen


def _withheld_note(withheld: tuple[tuple[str, str], ...], key: str) -> str:
    """What of payload `key` an app gets only if the policy permits a read (`EventSpec.withheld`):
    the whole key, or some of its fields."""
    by_action: dict[str, list[str]] = {}
    for path, action in withheld:
        head, _, field = path.partition(".")
        if head == key:
            by_action.setdefault(action, []).append(field)
    notes = [f"only if the policy permits {action}" if fields == [""] else
             f"{', '.join(f'`{f}`' for f in fields)} only if the policy permits {action}"
             for action, fields in by_action.items()]
    return f" ({'; '.join(notes)}, else None)" if notes else ""


def render() -> str:
    events = sorted(EVENTS)
    lines = [
        "# Events and their payloads",
        "",
        "Generated from `policies/vocabulary.py` (`EVENTS`) and `host/server/shapes.py` by",
        "`python -m host.apps.eventdoc > docs/EVENTS.md`; do not edit by hand.",
        "",
        "An app handles an event with a method named `on_<event>` (dots and dashes become",
        "underscores) and receives it only when its manifest lists the event in `events` and the",
        "operator granted every permission in *needs*, and the operator's policy permits the",
        "app every action in *policy must permit* (what the payload's data amounts to:",
        "`EventSpec.amounts_to`; a forbid on one of them, or no permit, and the event never",
        "reaches the app, as the read would be refused on the bridge). A *pre* event runs",
        "before the action, in app-id order under a short deadline, and may return",
        "`{\"prevent\": True, \"reason\": ...}` or `{\"text\": ...}` (a text the server",
        "cannot store, empty, over 8 KiB or holding a NUL, is that app preventing the message).",
        "A payload key or",
        "field marked *only if the policy permits* an action is None for an app the policy (or",
        "its grants) refuse that read: the event still arrives, without that data",
        "(`EventSpec.withheld`).",
        "",
        "| event | handler | needs | policy must permit | pre | payload |",
        "|---|---|---|---|---|---|",
    ]
    for name in events:
        e = EVENTS[name]
        payload = ", ".join(f"`{k}`: {_cell(t)}{_withheld_note(e.withheld, k)}"
                            for k, t in e.payload)
        lines.append(f"| `{name}` | `{handler_for(name)}` | {', '.join(e.needs)} | "
                     f"{', '.join(e.amounts_to)} | {'yes' if e.pre else ''} | {payload} |")
    lines += ["", "## Lifecycle hooks", "",
              "`on_<hook>(self, ctx, event)`; `event` is `{\"hook\": <hook>, ...}` with:", "",
              "| hook | event also holds | delivered | bridge calls |", "|---|---|---|---|"]
    lines += [f"| `{h}` | {detail} | {when} | {calls} |" for h, detail, when, calls in LIFECYCLE]
    lines += ["", *AT_LEAST_ONCE.splitlines()]
    lines += ["", "## Events that apps' writes raise, and loops", "", *LOOPS.format(
        depth=MAX_EVENT_DEPTH, writes=MAX_EVENT_DEPTH + 1, kept=MAX_SENT_CAUSES,
        minutes=SENT_CAUSE_KEEP_S / 60).splitlines()]
    lines += ["", "## What the example apps use", "",
              "Each example in `examples/apps/` handles these events and reads these fields:", "",
              "| app | event or hook | fields it reads | what it does |", "|---|---|---|---|"]
    lines += [f"| `{app}` | {ev} | {fields} | {does} |" for app, ev, fields, does in EXAMPLE_USES]
    lines += ["", "## Shapes", ""]
    for shape in _shape_names(events):
        lines += [f"### {shape}", "", "| field | type |", "|---|---|"]
        for field_name, tp in typing.get_type_hints(getattr(shapes, shape)).items():
            lines.append(f"| `{field_name}` | {_cell(_type_words(tp))} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
