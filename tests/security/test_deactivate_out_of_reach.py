"""No policy lets an app deactivate an admin-class user or another app's own user (DESIGN rules
10 and 11).

`any_user = true` is a policy's documented widening of the own-users rule, and with it on
`users.deactivate` an app deactivated the workspace's admin, through the bridge and through the
REST bridge's `users.setActiveStatus` / `users.update`: the admin's every power gone at once
(their sign-ins ended, no way back but another admin), where `roles.remove` of the admin role
itself is refused whatever a policy says. It also deactivated another app's own user, which
only that app's install and uninstall manage. The embedded server now refuses both to any app,
whatever the gate allowed; the remote adapter refuses them before the request leaves.

The gate decides them too: its decision record says refused, by the guardrail, and the call is
charged no quota unit. Before, the record said allowed (the outcome then said refused, its unit
kept), and `stockade can-i` answered "allowed" where the gate's call was refused."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audithelp import audit_bodies
from gatehelp import policy_rig

from host.errors import GateError
from host.server.principals import SYSTEM

APP = "deact"
POLICY = f'''
schema = 1
name = "deact"
[[rule]]
id = "deact-anyone"
effect = "permit"
apps = ["{APP}"]
actions = ["users.deactivate"]
[rule.when]
any_user = true
[[rule]]
id = "deact-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/users.setActiveStatus", "POST /api/v1/users.update"]
rest_fields = []
[[quota]]
id = "deact-rate"
apps = ["{APP}"]
action = "*"
limit = 100
window = "10m"
scope = "install"
'''


def _attacks(uid: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("users.deactivate", {"user_id": uid}),
        ("rest.call", {"method": "POST", "route": "/api/v1/users.setActiveStatus",
                       "body": {"userId": uid, "activeStatus": False}}),
        ("rest.call", {"method": "POST", "route": "/api/v1/users.update",
                       "body": {"userId": uid, "data": {"active": False}}}),
    ]


def decided_by_the_guardrail(rig: Any, action: str) -> None:
    """The gate's own decision refused `action` by a guardrail, recorded so, and charged no
    unit of the policy's quota (the outcome is not where the refusal shows)."""
    verdicts = [(b["allowed"], b["code"]) for b in audit_bodies(rig.home)
                if b.get("kind") == "decision" and b.get("action") == action]
    assert verdicts == [(False, "guardrail")], f"the gate's decision records: {verdicts}"
    charge = rig.gate.policy.current().charges(rig.session.app_id, rig.session.install_id,
                                               action)[0]
    assert rig.ledger.quota_state(charge.key, charge.limit, charge.window_s).used == 0


def _refused(rig: Any, action: str, args: dict[str, Any]) -> bool:
    try:
        out = rig.gate.handle(rig.session, action, args)
    except GateError:
        return True
    return action == "rest.call" and out["status"] >= 400


@pytest.mark.parametrize("door", ["bridge", "setActiveStatus", "users.update"])
@pytest.mark.parametrize("target", ["admin", "manager", "another-app"])
def test_no_policy_lets_an_app_deactivate_an_admin_or_another_apps_user(
        tmp_path: Path, target: str, door: str) -> None:
    rig = policy_rig(tmp_path, APP, ["users.deactivate", "server.rest"], {"deact": POLICY})
    srv = rig.server._server
    victim = (srv.create_app_user("other", "Other") if target == "another-app" else
              srv.users_create(SYSTEM, "boss", "Boss", "user",
                               roles=["admin" if target == "admin" else "livechat-manager"]))
    action, args = _attacks(victim["id"])[["bridge", "setActiveStatus", "users.update"]
                                          .index(door)]
    assert _refused(rig, action, args), f"{action} {args} deactivated the {target}"
    assert srv.users_get(SYSTEM, victim["id"])["active"] is True
    decided_by_the_guardrail(rig, "users.deactivate")


def test_the_same_policy_still_deactivates_a_plain_user_and_the_apps_own(tmp_path: Path) -> None:
    """The control: `any_user` still reaches an ordinary human, and the app its own user."""
    rig = policy_rig(tmp_path, APP, ["users.deactivate", "server.rest"], {"deact": POLICY})
    srv = rig.server._server
    for n, (action, args) in enumerate(_attacks("")):
        human = srv.users_create(SYSTEM, f"human-{n}", "Human", "user")
        args = {**args, "user_id": human["id"]} if action != "rest.call" else {
            **args, "body": {**args["body"], "userId": human["id"]}}
        assert not _refused(rig, action, args)
        assert srv.users_get(SYSTEM, human["id"])["active"] is False
    own = rig.session.caller.app_user_id
    rig.gate.handle(rig.session, "users.deactivate", {"user_id": own})
    assert srv.users_get(SYSTEM, own)["active"] is False
