"""A room waiting in the queue goes to an agent the moment one can serve it, in the harness too.

The embedded server routes the queue when a change makes an agent routable (status available,
a department joined, the bot role given, reactivated: `host/server/rooms.py` `dispatch_queue`),
as Rocket.Chat does. The harness's fake server routed a room only when it started: an app that
made its own user an available agent while a visitor waited saw no `livechat.agent_assigned`
in its tests and could `take_room` the room itself, where the host had already routed the
room to it (the take refused as a conflict, the assignment event delivered instead).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness_helpers import write_app
from harness_vs_gate import Step, close_all, rig_and_harness, run_steps

POLICY = '''
schema = 1
name = "test"
[[rule]]
id = "agents"
effect = "permit"
apps = ["probe"]
actions = ["livechat.read", "livechat.write", "livechat.agents", "roles.assign"]
[rule.when]
roles = ["bot"]
'''
PERMS = ("livechat.read", "livechat.write", "livechat.agents", "roles.assign")


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    close_all()


def _steps(user: str, room: str, routable: Step) -> list[Step]:
    return [("livechat.add_agent", {"user_id": user}), routable,
            ("livechat.get_room", {"room_id": room}),
            ("livechat.take_room", {"room_id": room, "agent_id": user})]


@pytest.mark.parametrize("how", ["available", "bot role"])
def test_a_queued_room_is_routed_when_an_agent_becomes_routable(tmp_path: Path,
                                                                  how: str) -> None:
    app = write_app(tmp_path / "app", permissions=PERMS)
    rig, h = rig_and_harness(tmp_path, app, POLICY)

    def routable(user: str) -> Step:
        if how == "available":
            return ("livechat.set_agent_status", {"user_id": user, "status": "available"})
        return ("roles.assign", {"user_id": user, "role": "bot"})

    server = rig.server._server
    room = server.visitor_start_room(server.save_visitor("visitor-token-1", "Ann")["id"])["id"]
    user = rig.installs.get(rig.session.install_id).app_user_id
    gate = run_steps(lambda a, args: rig.gate.handle(rig.session, a, args),
                     _steps(user, room, routable(user)))
    h_room = h.start_room(h.add_visitor(name="Ann")["id"])["room"]["id"]
    h.skip_emitted()
    h_user = h.app_user["id"]
    harness = run_steps(h.call, _steps(h_user, h_room, routable(h_user)))
    assert [c for c, _ in gate] == ["ok", "ok", "ok", "conflict"], gate  # routed: no take
    assert [c for c, _ in harness] == [c for c, _ in gate], harness
    assert h.server.rooms[h_room]["served_by"] == h_user
    assigned = h.emitted_named("livechat.agent_assigned")
    assert [(p["room"]["id"], p["agent"]["user_id"]) for p in assigned] == [(h_room, h_user)]


def test_a_department_joined_routes_that_departments_queue(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", permissions=PERMS)
    _rig, h = rig_and_harness(tmp_path, app, POLICY)
    h.add_department("Support")
    queued = h.start_room(h.add_visitor(name="Ann")["id"], "Support")["room"]["id"]
    elsewhere = h.start_room(h.add_visitor(name="Bob")["id"])["room"]["id"]  # no department
    user = h.app_user["id"]
    h.call("livechat.add_agent", {"user_id": user})
    h.call("livechat.set_agent_status", {"user_id": user, "status": "available"})
    assert h.server.rooms[elsewhere]["served_by"] == user  # any agent may serve it
    assert h.server.rooms[queued]["served_by"] is None  # not in Support yet
    h.call("livechat.add_department_agent", {"department": "Support", "user_id": user})
    assert h.server.rooms[queued]["served_by"] == user
