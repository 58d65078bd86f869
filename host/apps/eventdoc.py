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
        "operator granted every permission in *needs*. A *pre* event runs before the action, in",
        "app-id order under a short deadline, and may return",
        "`{\"prevent\": True, \"reason\": ...}` or `{\"text\": ...}`.",
        "",
        "| event | handler | needs | pre | payload |",
        "|---|---|---|---|---|",
    ]
    for name in events:
        e = EVENTS[name]
        payload = ", ".join(f"`{k}`: {_cell(t)}" for k, t in e.payload)
        lines.append(f"| `{name}` | `{handler_for(name)}` | {', '.join(e.needs)} | "
                     f"{'yes' if e.pre else ''} | {payload} |")
    lines += ["", "## Shapes", ""]
    for shape in _shape_names(events):
        lines += [f"### {shape}", "", "| field | type |", "|---|---|"]
        for field_name, tp in typing.get_type_hints(getattr(shapes, shape)).items():
            lines.append(f"| `{field_name}` | {_cell(_type_words(tp))} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
