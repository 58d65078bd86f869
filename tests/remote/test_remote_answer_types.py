"""A workspace's documents reach apps (bridge answers) in Stockade's shapes, with the types the
shapes name, whatever the workspace put in a field: a message's sender `username` / `name` and
its `avatar` were passed on as the workspace sent them (a list, an object nested as deep as the
frame allows, a number past any int64), a user's `roles` given as a string became its letters
(`"admin"` → `["a", "d", "m", "i", "n"]`), an email entry without an address became "None"."""
from __future__ import annotations

from typing import Any

import pytest

from host.server.remote import convert

ODD: list[Any] = [["x"], {"a": {"b": {"c": 1}}}, 10**30, 1.5, True]


@pytest.mark.parametrize("odd", ODD)
def test_a_messages_sender_and_display_are_strings_or_none(odd: Any) -> None:
    msg = convert.message({"_id": "m1", "rid": "r1", "msg": "hi", "alias": "Agent",
                           "avatar": odd, "u": {"_id": "u1", "username": odd, "name": odd}},
                          app_id=None)
    sender = msg["sender"]
    for key in ("username", "name"):
        assert sender[key] is None or isinstance(sender[key], str), (key, sender[key])
    assert msg["display"] is not None
    assert msg["display"]["avatar_url"] is None or isinstance(msg["display"]["avatar_url"], str)


def test_a_users_lists_are_lists_of_strings_as_sent() -> None:
    u = convert.user({"_id": "u1", "username": "bob", "roles": "admin",
                      "emails": [{"verified": True}, {"address": "b@x.io"}, "c@x.io"]},
                     created_by_app=None, app_id=None)
    assert u["roles"] == []  # not a list: no roles read, never its letters
    assert u["emails"] == ["b@x.io"]
    u = convert.user({"_id": "u1", "username": "bob", "roles": ["user", {"r": 1}, 7]},
                     created_by_app=None, app_id=None)
    assert u["roles"] == ["user"]


@pytest.mark.parametrize("odd", [5, "xy", {"a": 1}])
def test_a_non_list_field_is_read_as_empty_never_raises(odd: Any) -> None:
    u = convert.user({"_id": "u1", "username": "bob", "roles": odd, "emails": odd},
                     created_by_app=None, app_id=None)
    assert u["roles"] == [] and u["emails"] == []
    a = convert.agent({"_id": "u1", "departments": odd})
    assert a["departments"] == []
    d = convert.department({"_id": "d1", "agents": odd})
    assert d["agents"] == []
    v = convert.visitor({"_id": "v1", "visitorEmails": odd})
    assert v["email"] is None


def test_a_role_read_back_needs_a_list_that_holds_it(tmp_path: Any) -> None:
    """The read-back of a role write whose answer was lost: a `roles` string that merely
    contains the role's name ("helpers") is no proof the role was assigned."""
    from rcfake import FakeWorkspace, remote_on

    fake = FakeWorkspace({"GET users.info": lambda q, b: (200, {"user": {
        "_id": "u1", "username": "bob", "roles": "helpers"}})})
    rs = remote_on(fake, tmp_path)
    rs.owned.begin_op("op-r", "roles.assign", {"user_id": "u1", "role": "helper"}, 0.0)
    assert rs.was_applied("op-r") is False


@pytest.mark.parametrize("total", ["many", None, 2.5, [1]])
def test_a_user_search_reads_an_odd_total_as_the_end(tmp_path: Any, total: Any) -> None:
    """users.list's `total` of another type: int("many") raised ValueError, which the gate
    reads as the app's own bad input (audited invalid_argument, units refunded)."""
    from rcfake import FakeWorkspace, remote_on

    from host.server.principals import Caller

    doc = {"_id": "u1", "username": "bob", "customFields": {"ext": "7"}}
    fake = FakeWorkspace({"GET users.list": lambda q, b: (200, {"users": [doc],
                                                                "total": total})})
    rs = remote_on(fake, tmp_path)
    found = rs.users_find_by_field(Caller("a", "in-a", "au"), "ext", "7")
    assert [u["id"] for u in found] == ["u1"]


@pytest.mark.parametrize("raw", [{"$date": float("nan")}, {"$date": float("inf")},
                                 {"$date": 10**400}, {"$date": True}, "NaN"])
def test_a_time_is_always_a_finite_number(raw: Any) -> None:
    """Python's JSON reader takes NaN, Infinity and 400-digit numbers: a message's `ts` reached
    the app as null (NaN through the frame encoder), or raised OverflowError."""
    import math

    value = convert.ts(raw)
    assert isinstance(value, float) and math.isfinite(value)
