"""The demo's narration: checks and their results, act titles, inert lines, and the events the
host emits told as they happen. `Narrator` is the base of the demo's acts."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from host.inert import MAX_BLOCK, host, line, visible


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class DemoResult:
    checks: list[Check] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.__dict__ for c in self.checks], **self.summary}


class Narrator:
    out: Console
    result: DemoResult

    def act(self, title: str) -> None:
        if len(title) + 6 > self.out.width:
            # A rule cuts a long title with an ellipsis: on a narrow terminal the title goes on
            # its own (wrapped) line under a plain rule instead.
            self.out.rule()
            self.out.print(host(title, "bold"))
            return
        self.out.rule(host(title, "bold"))

    def say(self, text: str, style: str = "") -> None:
        # Narration quotes what apps did (usernames, messages, refusal text): inert, one line
        # (DESIGN rule 12), in the narrator's style.
        self.out.print(host(visible(text, limit=MAX_BLOCK), style))

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.result.checks.append(Check(name, ok, detail))
        mark = host("✔", "green") if ok else host("✘", "bold red")
        out = line("  ", mark, " ", name)
        if detail:
            out.append_text(host(f" ({visible(detail, limit=MAX_BLOCK)})", "dim"))
        self.out.print(out)
        return ok

    def _on_event(self, name: str, payload: dict[str, Any]) -> None:
        room = payload.get("room") or {}
        rid = str(room.get("id", ""))[:6]
        if name in ("livechat.agent_assigned", "livechat.agent_unassigned"):
            agent = payload.get("agent") or {}
            verb = "assigned to" if name.endswith("_assigned") else "unassigned from"
            self.say(f"    event {name}: room {rid} {verb} {agent.get('username')}", "cyan")
        elif name == "livechat.room_started":
            visitor = payload.get("visitor") or {}
            self.say(f"    event {name}: room {rid} for visitor {visitor.get('name')}", "cyan")
        elif name == "livechat.room_transferred":
            to = (payload.get("to") or {}).get("username")
            self.say(f"    event {name}: room {rid} → {to}", "cyan")
        elif name == "message.sent":
            msg = payload.get("message") or {}
            sender = msg.get("sender") or {}
            who = sender.get("name") or "?"
            display = msg.get("display") or {}
            if display.get("name"):
                # What the visitor sees, and who really sent it (what staff see).
                who = f"{display['name']} [relayed by {sender.get('username')}]"
            elif sender.get("type") == "user" and msg.get("app_id"):
                who = f"{who} [{sender.get('username')}, sent by app {msg['app_id']}]"
            self.say(f"    {who}: {short(str(msg.get('text')), 160)}", "dim")
        elif name == "livechat.room_closed":
            self.say(f"    event {name}: room {rid}", "cyan")


def short(text: str, width: int) -> str:
    """At most `width` characters, cut at a word boundary (never mid-word)."""
    return textwrap.shorten(text, width, placeholder=" …") or text[:width]
