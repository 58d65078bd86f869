"""The harness's server refuses what the host's servers refuse whatever a policy's `any_user`
says (tests/security/test_deactivate_out_of_reach.py, test_another_apps_user_out_of_reach.py):
deactivating a user holding an admin-class role, and changing another app's own user. Before, an
app's test passed under the harness and the same call was refused on every real host."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.errors import PermissionDenied
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
