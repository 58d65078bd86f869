"""A pre-send hook that answers with text the server cannot store (over 8 KiB, empty, or holding a
NUL, which a PostgreSQL store refuses) stops the message: the audit chain must say so, naming the
app, never record it as a change.

Before, the hook's answer was recorded as `pre_send_changed` (digests of a text that was never
stored), the server then refused it, and the sender got `InvalidArgument` as if its own text were
bad: an app could silently drop every message in the workspace while the chain showed only
harmless "changes" and no `pre_send_prevented` record (SECURITY.md: "a stopped message is a
`pre_send_prevented` record"). A NUL from a hook was stored on SQLite and refused on PostgreSQL
(the same chain of records, then `invalid_argument` for the sender): what a hook may write no
longer depends on the operator's store."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.server.errors import Prevented
from host.server.principals import SYSTEM

HOOK = '''
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        text = event["message"]["text"]
        if text == "make it big":
            return {"text": "x" * 9000}
        if text == "make it empty":
            return {"text": ""}
        if text == "add a nul":
            return {"text": "a\\x00b"}
        if text == "tag me":
            return {"text": text + " [ok]"}
        return None
'''

POLICY = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["dropper"]
actions = ["messages.read", "messages.send"]
'''


def _audit(home: Home) -> list[dict[str, Any]]:
    with sqlite3.connect(home.host_db) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM audit ORDER BY seq")]


def test_an_invalid_change_is_a_prevention_by_the_app_in_the_chain(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", POLICY)
    install(home, write_app(tmp_path / "apps", "dropper", ["messages.read", "messages.send"],
                            ["message.pre_send"], HOOK))
    with Host(home, config=HostConfig(pre_send_deadline_s=2.0)) as h:
        v = h.server.save_visitor("visitor-invalid-change", "V")
        room = h.server.visitor_start_room(v["id"])["id"]
        for text in ("make it big", "make it empty", "add a nul"):
            with pytest.raises(Prevented, match="dropper") as stopped:
                h.server.visitor_send_message(v["id"], room, text)
            assert stopped.value.prevented_by == "dropper"
        # A valid change still applies, and is recorded as one.
        assert h.server.visitor_send_message(v["id"], room, "tag me")["text"] == "tag me [ok]"
        stored = [m["text"] for m in h.server.messages_list(SYSTEM, room)]
    assert stored == ["tag me [ok]"]
    rows = [r for r in _audit(home) if str(r.get("event", "")).startswith("pre_send")]
    assert [r["event"] for r in rows] == [
        "pre_send_prevented", "pre_send_prevented", "pre_send_prevented", "pre_send_changed"]
    assert all(r["app_id"] == "dropper" for r in rows)
    assert all("invalid text" in r["detail"] for r in rows[:3])
