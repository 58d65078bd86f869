"""Events follow the operator's policy: an app the policy refuses a read never gets the same data
as an event (DESIGN rule 7: power = manifest ∩ consent ∩ policy; rule 11: no side doors).

Real host, real confined children. Before the fix events were routed by grants alone: an app
forbidden `messages.list` and `livechat.get_visitor` still received the message text and the
visitor's e-mail, widget token and custom fields in `message.sent` / `livechat.room_started`.
"""
from __future__ import annotations

import time
from pathlib import Path

from apphelp import install, write_app, write_policy
from reloadhelp import app_log, policy_taken, reload_policy

from host.apps.installs import InstallRecord
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM
from host.supervise.supervisor import EventDropped

SECRET_TEXT = "my card is 4111-1111-1111-1111"
TOKEN = "VISITOR-SECRET-TOKEN"
EMAIL = "eve@example.org"

SPY = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        print("SAW message.sent " + event["message"]["text"])

    def on_livechat_room_started(self, ctx, event):
        v = event["visitor"]
        print("SAW room_started " + str(v["email"]) + " " + v["token"] + " " + str(v["custom_fields"]))

    def on_livechat_guest_saved(self, ctx, event):
        print("SAW guest_saved " + str(event["visitor"]["email"]))

    def on_livechat_agent_assigned(self, ctx, event):
        print("SAW agent_assigned " + event["room"]["id"])

    def on_message_pre_send(self, ctx, event):
        print("SAW pre_send " + event["message"]["text"])
        return {"text": event["message"]["text"] + " [rewritten by " + ctx.app_id + "]"}
'''
EVENTS = ["message.sent", "livechat.room_started", "livechat.guest_saved",
          "livechat.agent_assigned", "message.pre_send"]
PERMS = ["messages.read", "messages.send", "livechat.read"]

# Both apps are permitted every read; the spy is then forbidden the ones that carry the data.
PERMIT = '''
schema = 1
name = "reads"
[[rule]]
id = "reads"
effect = "permit"
apps = ["spy", "control"]
actions = ["messages.read", "messages.send", "livechat.read"]
'''
FORBID = '''
schema = 1
name = "nospy"
[[rule]]
id = "no-reads"
effect = "forbid"
apps = ["spy"]
actions = ["messages.list", "messages.send", "livechat.get_visitor", "livechat.get_room",
           "livechat.list_rooms"]
'''


def _setup(tmp_path: Path, *, forbid: bool) -> tuple[Home, InstallRecord, InstallRecord]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "reads", PERMIT)
    if forbid:
        write_policy(home, "nospy", FORBID)
    spy = install(home, write_app(tmp_path / "apps", "spy", PERMS, EVENTS, SPY))
    control = install(home, write_app(tmp_path / "apps", "control", PERMS, EVENTS, SPY))
    return home, spy, control


def _conversation(h: Host, n: int) -> str:
    """A visitor starts a room (an agent takes it) and writes; returns the message's final text."""
    v = h.server.save_visitor(f"{TOKEN}-{n}", "Eve", EMAIL, {"ssn": "123-45-6789"})
    agent = h.server.users_create(SYSTEM, f"agent-{n}", "E", "user")
    h.server.livechat_add_agent(SYSTEM, agent["id"])
    h.server.set_agent_status(agent["id"], "available")
    room = h.server.visitor_start_room(v["id"])
    msg = h.server.visitor_send_message(v["id"], room["id"], f"{SECRET_TEXT} #{n}")
    assert h.wait_idle(10)
    return str(msg["text"])


def _saw(log: str) -> list[str]:
    return [ln.split("| ", 1)[1] for ln in log.splitlines() if "| SAW " in ln]


def test_a_read_the_policy_forbids_never_arrives_as_an_event(tmp_path: Path) -> None:
    home, spy, control = _setup(tmp_path, forbid=True)
    with Host(home, config=HostConfig()) as h:
        text = _conversation(h, 1)
    spied, seen = app_log(home, spy), app_log(home, control)
    # The control, permitted the reads, saw every event: the events were raised.
    assert {s.split()[1] for s in _saw(seen)} == {"message.sent", "room_started", "guest_saved",
                                                  "agent_assigned", "pre_send"}, seen
    # The spy saw none of them, and none of the data (before: text, e-mail, token, fields).
    assert _saw(spied) == [], spied
    for secret in ("4111-1111-1111-1111", TOKEN, EMAIL, "123-45-6789"):
        assert secret not in spied
    # Its pre-send hook was not asked either: only the control rewrote the message.
    assert text.endswith("[rewritten by control]") and "spy" not in text
    # The operator reads why in the app's log (the host's note, once per event and revision).
    assert "events message.sent are not delivered to this app" in spied
    assert "no-reads" in spied and spied.count("events message.sent are not") == 1


def test_a_policy_reload_narrows_and_widens_events_at_once(tmp_path: Path) -> None:
    home, spy, _control = _setup(tmp_path, forbid=False)
    with Host(home, config=HostConfig()) as h:
        _conversation(h, 1)
        assert len(_saw(app_log(home, spy))) == 5  # permitted: every event (the cache is warm)
        reload_policy(h, home, "nospy", FORBID)
        _conversation(h, 2)
        assert not [s for s in _saw(app_log(home, spy)) if "#2" in s or f"{TOKEN}-2" in s]
        assert len(_saw(app_log(home, spy))) == 5  # nothing more reached it
        (home.policies_dir / "nospy.toml").unlink()
        policy_taken(h)
        _conversation(h, 3)
        assert len(_saw(app_log(home, spy))) == 10  # permitted again: every event of the third


def test_events_need_a_permit_not_only_the_grant(tmp_path: Path) -> None:
    """Default deny: no rule permitting the reads (only the shipped baseline) means no event,
    as it means PermissionDenied on the bridge."""
    home = Home(tmp_path / "home").ensure()
    spy = install(home, write_app(tmp_path / "apps", "spy", PERMS, EVENTS, SPY))
    with Host(home, config=HostConfig()) as h:
        text = _conversation(h, 1)
    assert _saw(app_log(home, spy)) == [] and "rewritten" not in text


def test_a_forbid_on_one_read_stops_only_the_events_that_carry_it(tmp_path: Path) -> None:
    """Forbidding `livechat.get_visitor` stops the events carrying a visitor (room_started,
    guest_saved); agent_assigned (the room) and the message events still arrive."""
    home, spy, _control = _setup(tmp_path, forbid=False)
    write_policy(home, "nospy", FORBID.replace(
        FORBID[FORBID.index("actions"):], 'actions = ["livechat.get_visitor"]\n'))
    with Host(home, config=HostConfig()) as h:
        _conversation(h, 1)
    saw = {s.split()[1] for s in _saw(app_log(home, spy))}
    assert saw == {"message.sent", "agent_assigned", "pre_send"}, saw


SLOW = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_closed(self, ctx, event):
        time.sleep(1.0)  # busy: what reaches it meanwhile waits in its queue

    def on_message_sent(self, ctx, event):
        print("SAW message.sent " + event["message"]["text"])
'''


def test_an_event_queued_before_a_narrowing_reload_is_dropped_not_delivered(
        tmp_path: Path) -> None:
    """An event already in the app's queue when a reload forbids what it carries is dropped
    (counted, audited as a `policy` drop) as it is taken. Before, it was delivered under the
    revision that admitted it, however long it waited (up to a minute, a thousand of them)."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "reads", PERMIT)
    spy = install(home, write_app(tmp_path / "apps", "spy", PERMS,
                                  ["message.sent", "livechat.room_closed"], SLOW))
    with Host(home, config=HostConfig()) as h:
        (runner,) = h.runners.values()
        busy = runner.submit("livechat.room_closed", {}, 10.0)
        time.sleep(0.3)  # its slow event runs
        delivery = h.dispatch("message.sent", {"message": {"text": SECRET_TEXT}})
        time.sleep(0.1)
        assert runner.status()["queued"] == 1  # admitted under the permit, waiting
        reload_policy(h, home, "nospy", FORBID)
        busy.result(10)
        assert h.wait_idle(10)
        (outcome,) = delivery.outcomes(10)
        assert isinstance(outcome, EventDropped) and "(policy)" in str(outcome), outcome
    assert SECRET_TEXT not in app_log(home, spy)  # before: SAW message.sent my card is ...
    assert runner.status()["dropped_by_reason"] == {"policy": 1}
