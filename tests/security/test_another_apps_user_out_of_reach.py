"""`any_user` reaches users no app owns, never another app's own user (DESIGN rules 1 and 11).

A policy's `any_user` widens the own-users rule so an app may manage the workspace's people
(their agent status, departments, roles, custom fields). Another app's own user is no person:
it is that app's identity, which only its install and uninstall manage. Under `any_user` an app
took it offline as an agent (`livechat.set_agent_status`), stopped it being an agent, took it
out of its departments, stripped or gave it roles and wrote its custom fields: the other app's
chats stopped reaching it. The embedded server now refuses each to any app but its owner.

The gate decides it too: each call's decision record says refused, by the guardrail, and no
quota unit is charged. Before, the records said allowed (each outcome then said refused, its
unit kept)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gatehelp import policy_rig
from test_deactivate_out_of_reach import decided_by_the_guardrail

from host.errors import GateError
from host.server.principals import SYSTEM

APP = "meddler"
POLICY = f'''
schema = 1
name = "meddle"
[[rule]]
id = "manage-people"
effect = "permit"
apps = ["{APP}"]
actions = ["livechat.agents", "roles.assign", "roles.remove", "users.set_custom_fields"]
[rule.when]
any_user = true
roles = ["bot", "app", "livechat-agent", "guest"]
custom_field_keys = ["x"]
[[quota]]
id = "meddle-rate"
apps = ["{APP}"]
action = "*"
limit = 100
window = "10m"
scope = "install"
'''
ASKED = ["livechat.agents", "roles.assign", "users.update"]


def _calls(uid: str, dep: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("livechat.set_agent_status", {"user_id": uid, "status": "not-available"}),
        ("livechat.remove_department_agent", {"department": dep, "user_id": uid}),
        ("livechat.add_department_agent", {"department": dep, "user_id": uid}),
        ("livechat.remove_agent", {"user_id": uid}),
        ("livechat.add_agent", {"user_id": uid}),
        ("roles.remove", {"user_id": uid, "role": "app"}),
        # Not `bot`: it lets its holder post under another name, which no app gives a person
        # it did not create (tests/server/test_server_rest_room_access.py).
        ("roles.assign", {"user_id": uid, "role": "guest"}),
        ("users.set_custom_fields", {"user_id": uid, "fields": {"x": "1"}}),
    ]


def _state(srv: Any, uid: str) -> tuple[Any, ...]:
    user = srv.users_get(SYSTEM, uid)
    agent = next((a for a in srv.list_agents() if a["user_id"] == uid), None)
    return (user["roles"], user["custom_fields"], user["active"],
            None if agent is None else (agent["status"], agent["departments"]))


def test_any_user_never_reaches_another_apps_own_user(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, APP, ASKED, {"meddle": POLICY})
    srv = rig.server._server
    other = srv.create_app_user("other", "Other")
    dep = srv.add_department("Support", [])
    srv.livechat_add_agent(SYSTEM, other["id"])
    srv.livechat_add_department_agent(SYSTEM, dep["id"], other["id"])
    srv.livechat_set_agent_status(SYSTEM, other["id"], "available")
    before = _state(srv, other["id"])
    reached = []
    for action, args in _calls(other["id"], dep["id"]):
        try:
            rig.gate.handle(rig.session, action, args)
            reached.append(action)
        except GateError:
            pass
    assert reached == [], f"another app's own user was changed by {reached}"
    assert _state(srv, other["id"]) == before
    for action, _args in _calls(other["id"], dep["id"]):
        decided_by_the_guardrail(rig, action)


def test_any_user_still_reaches_a_person_and_the_apps_own_user(tmp_path: Path) -> None:
    """The control: every one of the calls above reaches a human, and the app's own user."""
    rig = policy_rig(tmp_path, APP, ASKED, {"meddle": POLICY})
    srv = rig.server._server
    dep = srv.add_department("Support", [])
    for uid in (srv.users_create(SYSTEM, "human", "Human", "user", roles=["app"])["id"],
                rig.session.caller.app_user_id):
        srv.livechat_add_agent(SYSTEM, uid)
        for action, args in _calls(uid, dep["id"]):
            rig.gate.handle(rig.session, action, args)
        assert srv.users_get(SYSTEM, uid)["custom_fields"] == {"x": "1"}
