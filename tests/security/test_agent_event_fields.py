"""An assignment's agent names a staff member only to an app that may read users.

`livechat.agent_assigned` / `agent_unassigned` / `room_transferred` amounted to
`livechat.get_room` alone, yet their `agent` (`from`, `to`) carried the agent's username,
display name, user type and every department it is in. An app granted `livechat.read` only
(no `users.read`), or one the policy forbade the department reads, learned each agent's name
and departments from every assignment while the bridge refused it `users.get` and
`livechat.list_departments` (DESIGN rules 7 and 11). The room's `served_by` already names the
agent by id, so `user_id` stays.

Real host, real confined children.
"""
from __future__ import annotations

from pathlib import Path

from apphelp import install, write_app, write_policy

from host.apps.installs import InstallRecord
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM
from policies.events import held, strip

SRC = '''
from stockade import App, PermissionDenied

class TestApp(App):
    def on_livechat_agent_assigned(self, ctx, event):
        print("SAW agent=" + repr(event["agent"]))
        for what, call in (("user", lambda: ctx.users.get(event["agent"]["user_id"])),
                           ("departments", lambda: ctx.livechat.list_departments())):
            try:
                call()
                print("READ " + what + " allowed")
            except PermissionDenied:
                print("READ " + what + " refused")
'''
PERMIT = '''
schema = 1
name = "reads"
[[rule]]
id = "reads"
effect = "permit"
apps = ["narrow", "nodeps", "control"]
actions = ["livechat.read", "users.read"]
'''
FORBID = '''
schema = 1
name = "nodeps"
[[rule]]
id = "no-departments"
effect = "forbid"
apps = ["nodeps"]
actions = ["livechat.get_department", "livechat.list_departments"]
'''
NAME = "Jane Private-Name"


def _saw(home: Home, rec: InstallRecord) -> list[str]:
    path = home.logs_dir / f"{rec.install_id}.log"
    log = path.read_text() if path.exists() else ""
    return [ln.split("| ", 1)[1] for ln in log.splitlines() if "| SAW " in ln or "| READ " in ln]


def test_an_assignment_names_the_agent_only_to_an_app_that_may_read_users(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "reads", PERMIT)
    write_policy(home, "nodeps", FORBID)
    apps, ev = tmp_path / "apps", ["livechat.agent_assigned"]
    narrow = install(home, write_app(apps, "narrow", ["livechat.read"], ev, SRC))
    nodeps = install(home, write_app(apps, "nodeps", ["livechat.read", "users.read"], ev, SRC))
    control = install(home, write_app(apps, "control", ["livechat.read", "users.read"], ev, SRC))
    with Host(home, config=HostConfig()) as h:
        v = h.server.save_visitor("visitor-token-1", "Eve", None, {})
        agent = h.server.users_create(SYSTEM, "jane.doe", NAME, "user")
        h.server.livechat_add_agent(SYSTEM, agent["id"])
        h.server.set_agent_status(agent["id"], "available")
        dep = h.server.add_department("VIP-Escalations", [agent["id"]])
        h.server.visitor_start_room(v["id"], dep["id"])
        assert h.wait_idle(10)
    uid, did = agent["id"], dep["id"]
    # The control may read both: the whole agent.
    seen = _saw(home, control)
    assert any(NAME in s and "jane.doe" in s and did in s for s in seen), seen
    assert "READ user allowed" in seen and "READ departments allowed" in seen
    # No users.read: the bridge refuses the user, so the event names only the id (before: the
    # username and the display name).
    seen = _saw(home, narrow)
    assert "READ user refused" in seen, seen
    assert (f"SAW agent={{'user_id': '{uid}', 'username': None, 'name': None, 'type': None, "
            f"'status': 'available', 'routable_offline': False, 'departments': ['{did}']}}"
            in seen), seen
    # Forbidden the department reads: no departments (before: every department it is in).
    seen = _saw(home, nodeps)
    assert "READ departments refused" in seen, seen
    assert any("'departments': None" in s and NAME in s for s in seen), seen
    assert not any(did in s for s in seen if s.startswith("SAW")), seen


def test_a_withheld_field_is_stripped_from_a_copy_never_the_shared_payload() -> None:
    agent = {"user_id": "u1", "username": "jane", "name": "Jane"}
    payload = {"room": {"id": "r1"}, "agent": agent, "from": None}
    out = strip(payload, frozenset({"agent.username", "agent.name", "from.name"}))
    assert out == {"room": {"id": "r1"}, "from": None,
                   "agent": {"user_id": "u1", "username": None, "name": None}}
    assert payload["agent"] is agent and agent["name"] == "Jane"  # other receivers share it
    assert held(payload, "agent.name") and not held(out, "agent.name")
    assert not held(out, "from.name") and held(out, "agent.user_id")
