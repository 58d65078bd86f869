"""Since Rocket.Chat 6 a custom role's `_id` is random (`roles.create` answers `role._id`
beside `role.name`), and the permission table (`permissions.listAll`) names roles by that
`_id`, while `roles.addUserToRole` takes a name or an id (`Roles.findOneByIdOrName`). The host
compared the name an app asked for with the table's ids: a custom role holding admin-side powers
read as ordinary, and an app could grant it; a role the operator listed as privileged by name
could be granted by its id (an id an app can name: `limits.role_name` takes lowercase letters,
digits and '-', which most random ids are not). Each role is now known by all its names
(`roles.list`)."""
from __future__ import annotations

from pathlib import Path

import pytest
from rcfake import BUILT_IN_ROLES, FakeWorkspace, remote_on

from host.clock import SystemClock
from host.home import Home
from host.server.errors import Forbidden
from host.server.principals import Caller
from host.server.remote.server import RemoteServer

APP = Caller("a", "in-a", "au")
ROLES = [*({"_id": r, "name": r} for r in BUILT_IN_ROLES),
         {"_id": "k7hq2rzwmxa9pbl3c", "name": "cleaner"},
         {"_id": "zp4ytq8nvb2lsx6we", "name": "helper"}]
TABLE = {"update": [{"_id": "assign-roles", "roles": ["admin", "k7hq2rzwmxa9pbl3c"]},
                    {"_id": "view-c-room", "roles": ["admin", "user", "zp4ytq8nvb2lsx6we"]}]}


def _workspace(tmp_path: Path, privileged: frozenset[str] = frozenset()
               ) -> tuple[FakeWorkspace, RemoteServer]:
    fake = FakeWorkspace({
        "GET roles.list": lambda q, b: (200, {"roles": ROLES}),
        "GET permissions.listAll": lambda q, b: (200, TABLE),
        "GET users.info": lambda q, b: (200, {"user": {"_id": "u1", "username": "bob",
                                                       "roles": ["user"]}}),
        "POST roles.addUserToRole": lambda q, b: (200, {"success": True})})
    rs = remote_on(fake, tmp_path)
    if privileged:
        rs = RemoteServer(rs.client, Home(tmp_path).ensure().host_store, SystemClock(),
                          privileged_roles=privileged)
    return fake, rs


@pytest.mark.parametrize("asked", ["cleaner", "k7hq2rzwmxa9pbl3c"])
def test_a_custom_role_with_power_is_privileged_by_name_and_by_id(tmp_path: Path,
                                                                   asked: str) -> None:
    fake, rs = _workspace(tmp_path)
    with pytest.raises(Forbidden, match="privileged role"):
        rs.roles_assign(APP, "u1", asked, op_id="op-1")
    assert not fake.sent("POST", "roles.addUserToRole")


def test_an_operator_listed_role_is_privileged_by_its_id_too(tmp_path: Path) -> None:
    fake, rs = _workspace(tmp_path, privileged=frozenset({"helper"}))
    with pytest.raises(Forbidden, match="privileged role"):
        rs.roles_assign(APP, "u1", "zp4ytq8nvb2lsx6we", op_id="op-2")
    assert not fake.sent("POST", "roles.addUserToRole")


def test_an_ordinary_custom_role_is_still_granted(tmp_path: Path) -> None:
    fake, rs = _workspace(tmp_path)
    rs.roles_assign(APP, "u1", "helper", op_id="op-3")
    assert [b["roleName"] for _q, b in fake.sent("POST", "roles.addUserToRole")] == ["helper"]


def test_a_role_list_it_cannot_read_refuses_for_now(tmp_path: Path) -> None:
    from host.server.errors import Unavailable

    fake, rs = _workspace(tmp_path)
    fake.routes["GET roles.list"] = lambda q, b: (503, {})
    with pytest.raises(Unavailable):
        rs.roles_assign(APP, "u1", "helper", op_id="op-4")
    assert not fake.sent("POST", "roles.addUserToRole")


def test_a_lost_role_write_is_read_back_by_the_roles_id(tmp_path: Path) -> None:
    """A user's `roles` hold a custom role's `_id`: the read-back of a role change whose answer
    was lost looked for the name, said "not applied", and the units were given back."""
    fake, rs = _workspace(tmp_path)
    fake.routes["GET users.info"] = lambda q, b: (200, {"user": {
        "_id": "u1", "username": "bob", "roles": ["user", "zp4ytq8nvb2lsx6we"]}})
    rs.owned.begin_op("op-5", "roles.assign", {"user_id": "u1", "role": "helper"}, 0.0)
    assert rs.was_applied("op-5") is True
