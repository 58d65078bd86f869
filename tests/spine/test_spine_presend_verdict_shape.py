"""A pre-send hook's answer the host cannot read is said, in the app's log and in the harness.

The host reads a `message.pre_send` answer of None, `{"prevent": True, "reason": ...}` or
`{"text": ...}`; anything else it ignored without a word: a hook returning `{"block": True}`,
`False` or `"deny"` to stop a message saw every message stored, and nothing in `app logs` or in
its harness test said the answer was not understood. The host now notes it in the app's log
(the message still goes on as it was: nothing else was asked), and the harness refuses it
(HarnessError), from one definition (`policies.verdicts`).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from sandbox.harness import AppHarness, HarnessError

HOOK = '''
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        text = event["message"]["text"]
        if text == "stop":
            return {"prevent": True, "reason": "asked to"}
        if text == "shout":
            return {"text": "SHOUT"}
        return {"block": True} if text == "block" else None
'''
POLICY = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["judge"]
actions = ["messages.read", "messages.send"]
'''


def _app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "apps", "judge", ["messages.read", "messages.send"],
                     ["message.pre_send"], HOOK)


def test_the_host_notes_an_answer_it_cannot_read(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", POLICY)
    install(home, _app(tmp_path))
    with Host(home, config=HostConfig()) as h:
        v = h.server.save_visitor("visitor-hooks-1", "V")
        room = h.server.visitor_start_room(v["id"])["id"]
        assert h.server.visitor_send_message(v["id"], room, "block")["text"] == "block"
        assert h.server.visitor_send_message(v["id"], room, "shout")["text"] == "SHOUT"
        assert h.server.visitor_send_message(v["id"], room, "fine")["text"] == "fine"
    log = "".join(p.read_text() for p in home.logs_dir.glob("*.log"))
    notes = [ln for ln in log.splitlines() if "pre-send" in ln]
    assert len(notes) == 1 and "stockade: " in notes[0] and "'block'" in notes[0], log


def test_the_harness_refuses_it(tmp_path: Path) -> None:
    h = AppHarness.from_dir(_app(tmp_path))
    v = h.add_visitor(name="V")
    room = h.start_room(v["id"])["room"]["id"]
    with pytest.raises(HarnessError, match=r"'block'.*\{'prevent': True"):
        h.fire("message.pre_send", {"message": h.visitor_says(room, "block")["message"]})
    assert h.fire("message.pre_send", {"message": h.visitor_says(room, "stop")["message"]}) \
        == {"prevent": True, "reason": "asked to"}
    assert h.fire("message.pre_send",
                  {"message": h.visitor_says(room, "fine")["message"]}) is None
