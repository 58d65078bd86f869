"""Ids the workspace chooses (a created user's, a sent message's) are kept in host.db. A
workspace answering each message an app sends with a megabyte-long id grew host.db by a
megabyte a message (kept a day: `MESSAGES_KEEP_S`); a created user's the same, for good. An id
over `MAX_ID` is never kept: the write's outcome is unknown (the op stays pending, its units
reserved), the host's disk untouched."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rcfake import USER_NOT_FOUND, FakeWorkspace, remote_on

from host.server.errors import Unavailable
from host.server.limits import MAX_ID
from host.server.principals import Caller

APP = Caller("a", "in-a", "au")
BIG = "m" * (1 << 20)


def _db_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.db*"))


def test_a_megabyte_message_id_is_not_kept(tmp_path: Path) -> None:
    n = [0]

    def send(q: dict[str, str], b: Any) -> tuple[int, dict[str, Any]]:
        n[0] += 1
        return 200, {"success": True, "message": {"_id": f"{n[0]}{BIG}", "rid": "r1",
                                                  "msg": "hi", "u": {"_id": "au"}}}
    fake = FakeWorkspace({"POST users.createToken": lambda q, b: (200, {"data": {
        "authToken": "t"}}), "POST chat.sendMessage": send})
    rs = remote_on(fake, tmp_path)
    before = _db_bytes(tmp_path)
    for i in range(8):
        with pytest.raises(Unavailable) as err:
            rs.messages_send(APP, "r1", "hi", op_id=f"op-{i}")
        assert err.value.outcome_unknown
        assert rs.was_applied(f"op-{i}") is True  # sent: its units stay charged
    rs.owned.store.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _db_bytes(tmp_path) - before < 1 << 20  # 8 MiB of ids before the fix


def test_an_oversized_created_user_id_leaves_the_op_pending(tmp_path: Path) -> None:
    doc = {"_id": "u" * (MAX_ID + 1), "username": "bob", "active": True}
    made: list[bool] = []

    def create(q: dict[str, str], b: Any) -> tuple[int, dict[str, Any]]:
        made.append(True)
        return 200, {"user": doc}
    fake = FakeWorkspace({"POST users.create": create,
                          "GET users.info": lambda q, b: (200, {"user": doc}) if made
                          else USER_NOT_FOUND,
                          "GET permissions.listAll": lambda q, b: (200, {"update": []})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Unavailable) as err:
        rs.users_create(APP, "bob", "Bob", "user", op_id="op-u")
    assert err.value.outcome_unknown
    with pytest.raises(Unavailable):  # the read-back cannot keep it either: left pending
        rs.was_applied("op-u")
    op = rs.owned.op("op-u")
    assert op is not None and op[1] == "pending"
    assert rs.seats_in_use([]) == 0 and rs.owned.created_by(doc["_id"]) is None
