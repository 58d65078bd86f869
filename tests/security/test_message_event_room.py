"""`message.sent` carries its room only to an app that may read the room.

The event's `room` is what `livechat.get_room` answers (who serves it, its department, its
livechat custom fields, the agent display, the app that opened it); its message is what
`messages.list` answers. The event amounted to `messages.list` alone, so an app the policy (or
its grants) refused `livechat.get_room` got the whole room with every message: an app granted
only `messages.read` ("read the messages of rooms"), or one the operator's policy forbade
`livechat.get_room`, read the serving agent, the department and the room's custom fields from
each `message.sent`, while the same read on the bridge was refused (DESIGN rules 7 and 11).

Real host, real confined children.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from apphelp import install, write_app, write_policy
from reloadhelp import app_log

from host.apps.installs import InstallRecord
from host.gate.eventpolicy import EventPolicy
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM
from policies.events import CONDITIONED
from policies.loader import load_policy_text
from policies.vocabulary import ACTIONS, EVENTS

ROOM_SECRET = "crm-account-7731"

SRC = '''
from stockade import App, PermissionDenied

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        print("HOOK room=" + repr(event["room"]))

    def on_message_sent(self, ctx, event):
        print("SAW text=" + event["message"]["text"] + " room=" + repr(event["room"]))
        try:
            ctx.livechat.get_room(event["message"]["room_id"])
            print("READ room allowed")
        except PermissionDenied:
            print("READ room refused")
'''

PERMIT = '''
schema = 1
name = "reads"
[[rule]]
id = "reads"
effect = "permit"
apps = ["narrow", "forbidden", "control"]
actions = ["messages.read", "messages.send", "livechat.read"]
'''
# The operator lets `forbidden` read messages, never the rooms themselves.
FORBID = '''
schema = 1
name = "norooms"
[[rule]]
id = "no-room-reads"
effect = "forbid"
apps = ["forbidden"]
actions = ["livechat.get_room", "livechat.list_rooms"]
'''


def _saw(log: str) -> list[str]:
    return [ln.split("| ", 1)[1] for ln in log.splitlines()
            if "| SAW " in ln or "| READ " in ln or "| HOOK " in ln]


def test_message_sent_carries_the_room_only_to_an_app_that_may_read_it(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "reads", PERMIT)
    write_policy(home, "norooms", FORBID)
    apps = tmp_path / "apps"
    # Granted the messages only: no livechat.read, so no livechat.get_room.
    events = ["message.sent", "message.pre_send"]
    narrow = install(home, write_app(apps, "narrow", ["messages.read", "messages.send"], events,
                                     SRC))
    both = ["messages.read", "messages.send", "livechat.read"]
    forbidden = install(home, write_app(apps, "forbidden", both, events, SRC))
    control = install(home, write_app(apps, "control", both, events, SRC))
    with Host(home, config=HostConfig()) as h:
        v = h.server.save_visitor("visitor-token-1", "Eve", "eve@example.org", {})
        agent = h.server.users_create(SYSTEM, "agent-1", "Agent One", "user")
        h.server.livechat_add_agent(SYSTEM, agent["id"])
        h.server.set_agent_status(agent["id"], "available")
        dep = h.server.add_department("Billing", [agent["id"]])
        room = h.server.visitor_start_room(v["id"], dep["id"])
        # The room's livechat custom fields (a remote workspace's `livechatData`).
        with h.server.db.write() as conn:
            conn.execute("UPDATE rooms SET custom_fields = ? WHERE id = ?",
                            (json.dumps({"crmAccount": ROOM_SECRET}), room["id"]))
        h.server.visitor_send_message(v["id"], room["id"], "hello")
        assert h.wait_idle(10)
    seen = _saw(app_log(home, control))
    # The control may read the room: it gets the whole room, as the bridge would answer.
    assert any(ROOM_SECRET in s and agent["id"] in s and dep["id"] in s for s in seen), seen
    assert "READ room allowed" in seen
    assert any(s.startswith("HOOK room={") and ROOM_SECRET in s for s in seen), seen
    for rec in (narrow, forbidden):
        log = app_log(home, rec)
        seen = _saw(log)
        # It still gets the message (it may read messages) ...
        assert any(s.startswith("SAW text=hello ") for s in seen), (rec.app_id, log)
        # ... and the bridge refuses it the room ...
        assert "READ room refused" in seen, (rec.app_id, log)
        # ... so the event must not hand the room over (before: custom fields, the serving
        # agent and the department, in every message.sent).
        assert "SAW text=hello room=None" in seen, (rec.app_id, log)
        # Its pre-send hook still judges the message, without the room (before: the room).
        assert "HOOK room=None" in seen, (rec.app_id, log)
        for secret in (ROOM_SECRET, agent["id"], dep["id"]):
            assert secret not in log, (rec.app_id, secret, log)


FORBID_ROOM = '''
schema = 1
name = "p"
[[rule]]
id = "reads"
effect = "permit"
apps = ["app"]
actions = ["messages.read", "livechat.read"]
[[rule]]
id = "no-room-reads"
effect = "forbid"
apps = ["app"]
actions = ["livechat.get_room"]
'''


@dataclass(frozen=True)
class _Install:
    app_id: str = "app"
    install_id: str = "inst-1"
    grants: frozenset[str] = frozenset({"messages.read", "livechat.read"})


@dataclass
class _Job:
    name: str
    payload: dict[str, Any]


@dataclass
class _Old:
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def drop(self, job: _Job, why: str) -> None:
        self.dropped.append((job.name, why))


def test_a_queued_message_event_holding_its_room_is_dropped_once_the_room_is_refused() -> None:
    """An event queued with its room under a policy that let the app read rooms is decided
    again as it is taken (`Host.event_allowed`) or carried to a new runner: after a reload
    that forbids `livechat.get_room` it is dropped; one queued without its room still goes."""
    before = load_policy_text(FORBID_ROOM.replace('actions = ["livechat.get_room"]',
                                                  'actions = ["users.create"]'))
    after = load_policy_text(FORBID_ROOM)
    ep, inst = EventPolicy(), cast(InstallRecord, _Install())
    full = {"message": {"id": "m1"}, "room": {"id": "r1", "custom_fields": {"k": "v"}}}
    assert ep.payload_for(before, inst, "message.sent", full) is full
    assert ep.still_allowed(before, inst, "message.sent", full)
    stripped = ep.payload_for(after, inst, "message.sent", full)
    assert stripped == {"message": {"id": "m1"}, "room": None}
    assert not ep.still_allowed(after, inst, "message.sent", full)
    assert ep.still_allowed(after, inst, "message.sent", stripped)
    old = _Old()
    carried = ep.carry(after, inst, (old, [_Job("message.sent", full),
                                           _Job("message.sent", stripped)]))
    assert carried is not None and [j.payload for j in carried[1]] == [stripped]
    assert old.dropped == [("message.sent", "policy")]


def test_what_message_events_withhold_is_the_documented_plain_read() -> None:
    """The room is withheld as `livechat.get_room` decides it: a plain read no rule condition
    concerns (else every receiver would get None, fail closed), and docs/EVENTS.md says so."""
    for name in ("message.sent", "message.pre_send"):
        assert ("room", "livechat.get_room") in EVENTS[name].withheld
    for spec in EVENTS.values():
        for key, action in spec.withheld:
            head, _, field = key.partition(".")
            assert head in dict(spec.payload)
            assert field or dict(spec.payload)[key].endswith("| None")  # a whole key: optional
            assert action in ACTIONS and not ACTIONS[action].write and action not in CONDITIONED
