"""A users.create whose answer is lost (a 502 from a proxy, a timeout) is settled by finding the
username on the workspace. An app that asked to create a username a person already holds (an
admin's, say) had that person recorded as its own creation whenever the answer was lost: the
workspace had refused the create, but the read-back found the username. The app could then send
messages as that person (`messages.send_as_user` checks only Stockade's record), deactivate
them, rewrite their custom fields. A username is now checked free before the create leaves."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rcfake import USER_NOT_FOUND, FakeWorkspace, remote_on

from host.server.errors import Conflict, Forbidden, ServerError
from host.server.principals import Caller

APP = Caller("a", "in-a", "au")
ALICE = {"_id": "ALICE", "username": "alice", "roles": ["user", "admin"], "active": True}


def _info(q: dict[str, str], b: Any) -> tuple[int, dict[str, Any]]:
    if q.get("username") == "alice" or q.get("userId") == "ALICE":
        return 200, {"user": ALICE}
    return USER_NOT_FOUND


def test_a_lost_create_of_a_taken_username_takes_nobody(tmp_path: Path) -> None:
    fake = FakeWorkspace({"POST users.create": lambda q, b: (502, {}),  # "taken", then mangled
                          "GET users.info": _info,
                          "GET permissions.listAll": lambda q, b: (200, {"update": []}),
                          "POST chat.sendMessage": lambda q, b: (200, {"message": {
                              "_id": "M1", "rid": "r1", "msg": "hi", "u": {"_id": "ALICE"}}}),
                          "POST users.createToken": lambda q, b: (200, {"data": {
                              "authToken": "t"}})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(ServerError) as err:
        rs.users_create(APP, "alice", "Alice", "user", op_id="op-1")
    assert isinstance(err.value, Conflict)
    assert not fake.sent("POST", "users.create")  # nothing left for a taken name
    assert rs.was_applied("op-1") is False
    assert rs.owned.created_by("ALICE") is None
    with pytest.raises(Forbidden):
        rs.messages_send_as_user(APP, "r1", "ALICE", "hi from alice", op_id="op-2")
    assert not fake.sent("POST", "chat.sendMessage")
