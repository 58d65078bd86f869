"""A reference a workspace's room names (`servedBy`, `v`, `closedBy`) is an id only when it is a
string of 1..MAX_ID characters (`host/server/remote/convert.py` `_ref_id`). The serving agent's
id is kept per room in host.db (`rc_rooms`): a workspace answering with a megabyte-long id grew
it by a megabyte a room, and an object there was kept as its repr."""
from __future__ import annotations

from typing import Any

import pytest

from host.server.limits import MAX_ID
from host.server.remote import convert


def _room(served: Any) -> dict[str, Any]:
    return {"_id": "r1", "t": "l", "open": True, "v": {"_id": "v1"}, "servedBy": served}


@pytest.mark.parametrize("served", [{"_id": "u" * (MAX_ID + 1)}, {"_id": {"a": 1}},
                                    {"_id": 7}, {"_id": ""}, "u1"])
def test_a_reference_that_cannot_be_an_id_names_nobody(served: Any) -> None:
    assert convert.room(_room(served), display=None)["served_by"] is None


def test_an_id_within_the_bound_is_kept() -> None:
    assert convert.room(_room({"_id": "u" * MAX_ID}), display=None)["served_by"] == "u" * MAX_ID
