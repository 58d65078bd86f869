"""The engine's guardrail, whatever a permit's `any_user` says: no app changes another app's own
user (fact `target_is_another_apps_user`), and none deactivates a user holding a privileged role
(fact `target_holds_privileged_role`); `stockade policy explain` with those facts says so. Before,
both were decided "allowed" (only the servers refused them, after the decision record), and no
fact could make the engine or `policy explain` say otherwise."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_policy_cli import run

from policies import Request, decide
from policies.loader import load_policy

POLICY = '''
schema = 1
name = "p"
[[rule]]
id = "reach"
effect = "permit"
apps = ["a"]
actions = ["users.deactivate", "users.set_custom_fields", "roles.assign", "roles.remove",
           "livechat.agents"]
[rule.when]
any_user = true
roles = ["bot"]
custom_field_keys = ["x"]
[[quota]]
id = "q"
apps = ["a"]
action = "*"
limit = 9
window = "1h"
'''
ARGS = {"users.set_custom_fields": {"fields": {"x": "1"}}, "roles.assign": {"role": "bot"},
        "roles.remove": {"role": "bot"}, "livechat.set_agent_status": {"status": "available"},
        "livechat.add_department_agent": {"department": "d"},
        "livechat.remove_department_agent": {"department": "d"}}
# The own-users actions that change the user they name (`policies.engine.USER_CHANGE_ACTIONS`).
CHANGES = ["users.deactivate", "users.set_custom_fields", "roles.assign", "roles.remove",
           "livechat.add_agent", "livechat.remove_agent", "livechat.set_agent_status",
           "livechat.add_department_agent", "livechat.remove_department_agent"]
OTHER = {"target_is_own_app_user": False, "target_created_by_app": None}


def _decide(tmp_path: Path, action: str, facts: dict[str, object]) -> tuple[bool, str]:
    (tmp_path / "p.toml").write_text(POLICY)
    req = Request("a", "i", action, {"user_id": "u1", **ARGS.get(action, {})},
                  {"role_privileged": False, **OTHER, **facts}, 0.0)
    d = decide(load_policy(tmp_path / "p.toml"),
               frozenset({"users.deactivate", "users.update", "roles.assign",
                          "livechat.agents"}), req)
    return d.allowed, d.code


@pytest.mark.parametrize("action", CHANGES)
def test_another_apps_own_user_is_a_guardrail(tmp_path: Path, action: str) -> None:
    assert _decide(tmp_path, action, {"target_is_another_apps_user": True}) == (
        False, "guardrail")
    assert _decide(tmp_path, action, {"target_is_another_apps_user": False}) == (True, "allow")


def test_a_privileged_user_is_never_deactivated(tmp_path: Path) -> None:
    assert _decide(tmp_path, "users.deactivate", {"target_holds_privileged_role": True}) == (
        False, "guardrail")
    # a privileged user's custom fields are any_user's to write (only a deactivation takes
    # every power of the role)
    assert _decide(tmp_path, "users.set_custom_fields",
                   {"target_holds_privileged_role": True}) == (True, "allow")


def test_policy_explain_says_so(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(POLICY)
    base = ["explain", "--policy", str(tmp_path / "p.toml"), "--app", "a", "--action",
            "users.deactivate", "--arg", "user_id=u1", "--fact", "target_is_own_app_user=false",
            "--json"]
    code, out, _ = run(tmp_path, *base, "--fact", "target_holds_privileged_role=true")
    assert code == 1 and json.loads(out)["code"] == "guardrail", out
    code, out, _ = run(tmp_path, *base, "--fact", "target_is_another_apps_user=true")
    assert code == 1 and json.loads(out)["code"] == "guardrail", out
    code, out, _ = run(tmp_path, *base, "--fact", "target_holds_privileged_role=false")
    assert code == 0 and json.loads(out)["code"] == "allow", out
