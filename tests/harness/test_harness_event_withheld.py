"""The author harness hands an app an event's data as the host would: a message's room and an
agent's name are None for an app that may not read them (`EventSpec.withheld`), by its grants
and, under `use_policy`, by the policy, so an author's test sees what the host will deliver."""
from __future__ import annotations

from pathlib import Path

from harness_helpers import write_app

from sandbox.harness import AppHarness

SRC = '''
from stockade import App

class Probe(App):
    def on_livechat_agent_assigned(self, ctx, event):
        return event["agent"]

    def on_message_sent(self, ctx, event):
        return event["room"]
'''
AGENT = {"user_id": "u1", "username": "jane", "name": "Jane", "type": "user",
         "status": "available", "routable_offline": False, "departments": ["d1"]}
ROOM = {"id": "r1", "custom_fields": {"crm": "x"}}
FORBID = '''
schema = 1
name = "p"
[[rule]]
id = "reads"
effect = "permit"
apps = ["probe"]
actions = ["livechat.read", "messages.read", "users.read"]
[[rule]]
id = "no-deps"
effect = "forbid"
apps = ["probe"]
actions = ["livechat.list_departments"]
'''


def _fire(h: AppHarness, event: str, payload: dict[str, object]) -> object:
    return h.fire(event, payload)


def test_the_harness_withholds_what_the_grants_do_not_cover(tmp_path: Path) -> None:
    h = AppHarness.from_dir(write_app(tmp_path / "a", source=SRC, permissions=(
        "livechat.read", "messages.read"), events=("livechat.agent_assigned", "message.sent")))
    agent = _fire(h, "livechat.agent_assigned", {"room": ROOM, "agent": AGENT})
    assert agent == {**AGENT, "username": None, "name": None, "type": None}  # no users.read
    assert _fire(h, "message.sent", {"message": {}, "room": ROOM}) == ROOM  # livechat.read
    narrow = AppHarness.from_dir(write_app(tmp_path / "b", source=SRC, permissions=(
        "messages.read",), events=("message.sent",)))
    assert _fire(narrow, "message.sent", {"message": {}, "room": ROOM}) is None


def test_the_harness_withholds_what_the_policy_refuses(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(FORBID)
    h = AppHarness.from_dir(write_app(tmp_path / "a", source=SRC, permissions=(
        "livechat.read", "messages.read", "users.read"),
        events=("livechat.agent_assigned",))).use_policy(tmp_path / "p.toml")
    agent = _fire(h, "livechat.agent_assigned", {"room": ROOM, "agent": AGENT})
    assert agent == {**AGENT, "departments": None}
