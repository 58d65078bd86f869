"""A permission row whose `roles` is one role's name as a string, not a list: Rocket.Chat reads
it as that role holding the permission (its check is the query `{_id: permission, roles: {$in:
the user's roles}}`, which matches a string field equal to one of them), so the role holds the
power on the workspace. `rolepower.powerful_roles` skipped every row whose roles were not a
list, so such a role read as ordinary and an app could grant it (DESIGN rule 10)."""
from __future__ import annotations

from pathlib import Path

import pytest
from rcfake import FakeWorkspace, remote_on
from test_remote_moderation_role_is_privileged import DEFAULTS

from host.server.errors import Forbidden
from host.server.principals import Caller


@pytest.mark.parametrize("power", ["assign-roles", "create-user", "delete-message"])
def test_a_role_named_alone_as_a_string_in_the_permission_table_is_privileged(
        tmp_path: Path, power: str) -> None:
    table = {"update": [*DEFAULTS, {"_id": power, "roles": "cleaner"}]}
    fake = FakeWorkspace({"GET permissions.listAll": lambda q, b: (200, table),
                          "GET users.info": lambda q, b: (200, {"user": {
                              "_id": "u1", "username": "bob", "roles": ["user"]}}),
                          "POST roles.addUserToRole": lambda q, b: (200, {"success": True})})
    rs = remote_on(fake, tmp_path)
    app = Caller("a", "in-a", "au")
    with pytest.raises(Forbidden, match="privileged role"):
        rs.roles_assign(app, "u1", "cleaner", op_id="op-1")
    assert not fake.sent("POST", "roles.addUserToRole")
    assert rs.is_privileged("cleaner") and not rs.is_privileged("user")
