"""The seat read-back frees an app-created user's seat only when the workspace says the user is
inactive (`active: false`) or gone ("User not found"). It read a user document with no `active`
field as deactivated and freed the seat, while the same document reached apps as an active user
(`convert.user`): the seat ceiling then admitted one more creation for each such user, every one
of them active as far as the apps (and the host's own answers) could tell. A 2xx answer with no
user document in it says nothing of the user either, and is no deletion."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rcfake import USER_NOT_FOUND, FakeWorkspace, remote_on

from host.server.errors import Unavailable
from host.server.principals import SYSTEM, Caller


def _workspace(answer: dict[str, Any] | None) -> FakeWorkspace:
    def info(q: dict[str, str], _b: Any) -> tuple[int, dict[str, Any]]:
        if answer is None:
            return USER_NOT_FOUND
        return 200, answer
    return FakeWorkspace({"GET users.info": info})


@pytest.mark.parametrize("answer", [
    {"user": {"_id": "u1", "username": "bob"}},  # no `active` field
    {"user": {"_id": "u1", "username": "bob", "active": True}},
    {"success": True},  # a 2xx answer holding no user: nothing said of this one
], ids=["no-active-field", "active", "no-user-document"])
def test_a_seat_is_freed_only_on_the_workspaces_word(tmp_path: Path,
                                                     answer: dict[str, Any]) -> None:
    rs = remote_on(_workspace(answer), tmp_path)
    rs.owned.record_user("u1", "bob", created_by_app="a", app_id=None, now=0.0)
    assert rs.seats_in_use([]) == 1
    assert rs.sync_seats() == 0
    assert rs.seats_in_use([]) == 1, "the read-back freed a seat the workspace never freed"
    if "user" in answer:  # and what the apps see agrees with the seat count
        assert rs.users_get(SYSTEM, "u1")["active"] is True


@pytest.mark.parametrize("answer", [
    {"user": {"_id": "u1", "username": "bob", "active": False}},
    None,  # "User not found." (deleted on the workspace)
], ids=["deactivated", "deleted"])
def test_a_seat_the_workspace_freed_is_freed(tmp_path: Path,
                                             answer: dict[str, Any] | None) -> None:
    rs = remote_on(_workspace(answer), tmp_path)
    rs.owned.record_user("u1", "bob", created_by_app="a", app_id=None, now=0.0)
    assert rs.sync_seats() == 1 and rs.seats_in_use([]) == 0


def test_a_404_is_no_users_absence(tmp_path: Path) -> None:
    """Rocket.Chat says a user is gone with a 400 "User not found." A 404 is a route the
    workspace (or a proxy in front of it: an ingress whose backend is restarting) does not
    serve: it says nothing of the user. Read as a deletion it freed every seat of a pass, and
    it settled a create whose answer was lost as never applied (its unit and seat given back
    while the user may exist)."""
    rs = remote_on(FakeWorkspace({}), tmp_path)  # every route answers 404
    rs.owned.record_user("u1", "bob", created_by_app="a", app_id=None, now=0.0)
    with pytest.raises(Unavailable):
        rs.sync_seats()
    assert rs.seats_in_use([]) == 1, "a 404 freed the seat"
    rs.owned.begin_op("op-1", "users.create", {"username": "carol", "app_id": "a"}, 0.0)
    with pytest.raises(Unavailable):
        rs.was_applied("op-1")  # cannot say: the intent stays pending, its seat held
    assert rs.owned.op("op-1") is not None and rs.owned.op("op-1")[1] == "pending"


def test_a_404_never_passes_a_username_for_free(tmp_path: Path) -> None:
    """A create leaves only once the workspace said the username is free ("User not found.");
    after a 404 it was sent, and a lost answer's read-back could then record the person holding
    the name as the app's creation."""
    fake = FakeWorkspace({"POST users.create": lambda q, b: (200, {"user": {
        "_id": "u9", "username": b["username"], "active": True}})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Unavailable):
        rs.users_create(Caller("a", "in-a", "au"), "bob", "Bob", "user", op_id="op-1")
    assert not fake.sent("POST", "users.create")
