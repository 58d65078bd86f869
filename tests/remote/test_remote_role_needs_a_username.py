"""`roles.addUserToRole` / `roles.removeUserFromRole` and `livechat/users/agent` name the user
by username. A workspace
user with none (an OAuth sign-up before it picked one) was sent as the text "None": the role
went to whichever user is named `None`, or the call failed with a workspace error blaming a
user the app never named. Such a user is refused before any write."""
from __future__ import annotations

from pathlib import Path

import pytest
from rcfake import BUILT_IN_ROLES, FakeWorkspace, remote_on

from host.server.errors import Conflict
from host.server.principals import Caller

APP = Caller("a", "in-a", "au")


@pytest.mark.parametrize("doc", [{"_id": "u1", "roles": ["user"]},
                                 {"_id": "u1", "username": None, "roles": ["user"]},
                                 {"_id": "u1", "username": "", "roles": ["user"]}])
@pytest.mark.parametrize("change", ["assign", "remove", "agent"])
def test_a_user_without_a_username_is_refused_before_any_write(
        tmp_path: Path, doc: dict[str, object], change: str) -> None:
    fake = FakeWorkspace({
        "GET roles.list": lambda q, b: (200, {"roles": [{"_id": r, "name": r} for r in
                                                        [*BUILT_IN_ROLES, "helper"]]}),
        "GET permissions.listAll": lambda q, b: (200, {"update": []}),
        "GET users.info": lambda q, b: (200, {"user": doc}),
        "POST roles.addUserToRole": lambda q, b: (200, {"success": True}),
        "POST roles.removeUserFromRole": lambda q, b: (200, {"success": True}),
        "POST livechat/users/agent": lambda q, b: (200, {"success": True})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Conflict, match="no username"):
        if change == "agent":
            rs.livechat_add_agent(APP, "u1", op_id="op-1")
        else:
            (rs.roles_assign if change == "assign" else rs.roles_remove)(
                APP, "u1", "helper", op_id="op-1")
    assert not fake.sent("POST", "roles.addUserToRole")
    assert not fake.sent("POST", "roles.removeUserFromRole")
    assert not fake.sent("POST", "livechat/users/agent")
