"""Against a Rocket.Chat workspace too, an app's call never changes another app's own user,
whatever `any_user` says: its roles, agent record and status, departments and custom fields are
that app's identity (see tests/security/test_another_apps_user_out_of_reach.py for the embedded
server). Refused from Stockade's own record before any request leaves; the app's own user and a
person are still reached."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.errors import Forbidden
from host.server.principals import Caller
from host.server.remote.server import RemoteServer

APP = Caller("a", "in-a", "au")
CALLS: dict[str, Callable[[RemoteServer, str], Any]] = {
    "set_custom_fields": lambda rs, u: rs.users_set_custom_fields(APP, u, {"x": "1"},
                                                                  op_id="op-1"),
    "roles.assign": lambda rs, u: rs.roles_assign(APP, u, "bot", op_id="op-1"),
    "roles.remove": lambda rs, u: rs.roles_remove(APP, u, "bot", op_id="op-1"),
    "add_agent": lambda rs, u: rs.livechat_add_agent(APP, u, op_id="op-1"),
    "remove_agent": lambda rs, u: rs.livechat_remove_agent(APP, u, op_id="op-1"),
    "set_agent_status": lambda rs, u: rs.livechat_set_agent_status(APP, u, "not-available",
                                                                   op_id="op-1"),
    "add_department_agent": lambda rs, u: rs.livechat_add_department_agent(
        APP, "d1", u, op_id="op-1"),
    "remove_department_agent": lambda rs, u: rs.livechat_remove_department_agent(
        APP, "d1", u, op_id="op-1"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_an_app_never_changes_another_apps_own_user(tmp_path: Path, call: str) -> None:
    fake = FakeWorkspace({})  # any request at all would be logged
    rs = remote_on(fake, tmp_path)
    rs.owned.record_user("other", "app.other", created_by_app=None, app_id="other", now=0.0)
    with pytest.raises(Forbidden, match="another app's own user"):
        CALLS[call](rs, "other")
    assert [(m, r) for m, r, _q, _b in fake.log if m != "GET"] == []
    assert rs.owned.op("op-1") is None  # nothing left for the workspace


@pytest.mark.parametrize("target", ["au", "human"])
def test_the_apps_own_user_and_a_person_are_still_reached(tmp_path: Path, target: str) -> None:
    doc = {"_id": target, "username": target, "roles": ["user"], "customFields": {}}
    fake = FakeWorkspace({
        "GET users.info": lambda q, b: (200, {"user": doc}),
        "POST users.update": lambda q, b: (200, {"user": doc}),
    })
    rs = remote_on(fake, tmp_path)
    rs.owned.record_user("au", "app.a", created_by_app=None, app_id="a", now=0.0)
    CALLS["set_custom_fields"](rs, target)
    assert [b["userId"] for _q, b in fake.sent("POST", "users.update")] == [target]
