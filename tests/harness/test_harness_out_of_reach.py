"""The harness's server refuses what the host's servers refuse whatever a policy's `any_user`
says (tests/security/test_deactivate_out_of_reach.py, test_another_apps_user_out_of_reach.py):
deactivating a user holding an admin-class role, and changing another app's own user. Before, an
app's test passed under the harness and the same call was refused on every real host."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import PermissionDenied
from sandbox.harness_policy import PolicyCheck
from sandbox.harness_server import FakeServer

CHANGES: dict[str, Callable[[FakeServer, str], Any]] = {
    "users.deactivate": lambda s, u: s.users_deactivate(u),
    "users.set_custom_fields": lambda s, u: s.users_set_custom_fields(u, {"x": "1"}),
    "roles.assign": lambda s, u: s.roles_assign(u, "bot"),
    "roles.remove": lambda s, u: s.roles_remove(u, "app"),
    "livechat.add_agent": lambda s, u: s.livechat_add_agent(u),
    "livechat.set_agent_status": lambda s, u: s.livechat_set_agent_status(u, "not-available"),
    "livechat.remove_agent": lambda s, u: s.livechat_remove_agent(u),
}


def _server() -> tuple[FakeServer, dict[str, Any], dict[str, Any]]:
    t = iter(range(1, 10_000))
    server = FakeServer("a", lambda: float(next(t)))
    other = server.new_user("app.other", "Other", "app", roles=["app"], app_id="other")
    server.agents[other["id"]] = {"status": "available", "departments": set()}
    boss = server.new_user("boss", "Boss", "user", roles=["admin"])
    return server, other, boss


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_another_apps_own_user_is_out_of_reach(change: str) -> None:
    server, other, _boss = _server()
    before = repr(server.users[other["id"]])
    with pytest.raises(PermissionDenied, match="another app's own user"):
        CHANGES[change](server, other["id"])
    assert repr(server.users[other["id"]]) == before


def test_an_admin_is_never_deactivated_and_a_person_still_is() -> None:
    server, _other, boss = _server()
    with pytest.raises(PermissionDenied, match="privileged role"):
        server.users_deactivate(boss["id"])
    assert server.users[boss["id"]]["active"] is True
    human = server.new_user("human", "Human", "user")
    for uid in (human["id"], server.app_user["id"]):
        for change in ("users.set_custom_fields", "livechat.add_agent", "users.deactivate"):
            CHANGES[change](server, uid)
        assert server.users[uid]["active"] is False


ANY_USER = '''
schema = 1
name = "p"
[[rule]]
id = "reach-anyone"
effect = "permit"
apps = ["a"]
actions = ["users.deactivate", "livechat.agents"]
[rule.when]
any_user = true
[[quota]]
id = "q"
apps = ["a"]
action = "*"
limit = 9
window = "1h"
'''


def test_the_harness_decides_them_as_the_gate_does(tmp_path: Path) -> None:
    """Under any_user the harness's decision refuses them by the guardrail, charging no unit,
    as the gate's does (tests/security/test_deactivate_out_of_reach.py); before, it allowed
    them and the fake server refused (the decision said allowed, a unit was charged)."""
    (tmp_path / "p.toml").write_text(ANY_USER)
    pc = PolicyCheck.load(tmp_path / "p.toml")
    server, other, boss = _server()
    grants = frozenset({"users.deactivate", "livechat.agents"})
    for action, args in (("users.deactivate", {"user_id": boss["id"]}),
                         ("users.deactivate", {"user_id": other["id"]}),
                         ("livechat.set_agent_status",
                          {"user_id": other["id"], "status": "not-available"})):
        facts = pc.facts(server, server.app_user["id"], action, args)
        with pytest.raises(PermissionDenied, match=r"\[guardrail\]"):
            pc.check("a", grants, action, args, facts, 1.0, lambda: 0)
    assert all(not log for log in pc.quota_log.values())
    human = server.new_user("human", "Human", "user")
    args = {"user_id": human["id"]}
    pc.check("a", grants, "users.deactivate", args,
             pc.facts(server, server.app_user["id"], "users.deactivate", args), 2.0, lambda: 0)


@pytest.mark.parametrize("role", ["bot", "app"])
def test_a_person_is_not_given_a_role_that_impersonates(role: str) -> None:
    """As both servers (tests/server/test_server_rest_room_access.py::
    test_an_app_cannot_hand_a_person_the_power_to_pose): before, the harness gave it."""
    server, _other, _boss = _server()
    human = server.new_user("human", "Human", "user")
    with pytest.raises(PermissionDenied, match="message-impersonate"):
        server.roles_assign(human["id"], role)
    assert role not in server.users[human["id"]]["roles"]
    made = server.users_create("made", "Made", "user")
    assert role in server.roles_assign(made["id"], role)["roles"]
