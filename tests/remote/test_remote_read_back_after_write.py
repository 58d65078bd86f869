"""A write the workspace acknowledged, whose result the adapter then reads (`users.info` after a
role change, `rooms.info` after a close, the agent after a status change): the read's failure
(a 503 storm, a NotFound) passed for the write's own. The op was recorded `failed` and
`was_applied` said False for a role the workspace had granted; a NotFound would have been
refunded by the gate as a refusal. Now the write is recorded applied and the error says so
(`outcome_unknown`: the gate asks `was_applied`, which answers True, and keeps the units)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rcfake import USER_NOT_FOUND, FakeWorkspace, remote_on

from host.server.errors import Unavailable
from host.server.principals import Caller

APP = Caller("a", "in-a", "au")


@pytest.mark.parametrize("after", [(503, {}), USER_NOT_FOUND], ids=["503", "not-found"])
def test_a_role_granted_then_unreadable_is_recorded_applied(
        tmp_path: Path, after: tuple[int, dict[str, Any]]) -> None:
    roles = ["user"]
    reads = [0]

    def add(q: dict[str, str], b: Any) -> tuple[int, dict[str, Any]]:
        roles.append(b["roleName"])
        return 200, {"success": True}

    def info(q: dict[str, str], b: Any) -> tuple[int, dict[str, Any]]:
        reads[0] += 1
        if reads[0] > 1:  # the read that follows the write
            return after
        return 200, {"user": {"_id": "u1", "username": "bob", "roles": list(roles)}}

    fake = FakeWorkspace({"POST roles.addUserToRole": add, "GET users.info": info,
                          "GET permissions.listAll": lambda q, b: (200, {"update": []})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Unavailable) as err:
        rs.roles_assign(APP, "u1", "helper", op_id="op-1")
    assert err.value.outcome_unknown and "was applied" in err.value.message
    assert roles == ["user", "helper"]
    op = rs.owned.op("op-1")
    assert op is not None and op[1] == "applied"
    assert rs.was_applied("op-1") is True


def test_a_close_then_unreadable_room_is_recorded_applied(tmp_path: Path) -> None:
    fake = FakeWorkspace({"POST livechat/room.closeByUser": lambda q, b: (200, {"success": True}),
                          "GET rooms.info": lambda q, b: (503, {})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Unavailable) as err:
        rs.livechat_close_room(APP, "r1", op_id="op-2")
    assert err.value.outcome_unknown
    assert rs.was_applied("op-2") is True
