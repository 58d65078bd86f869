"""On a Rocket.Chat workspace the `bot` and `app` roles carry `message-impersonate` (a message's
`alias` and `avatar`: the name and face its reader sees), and neither is admin-class, so a policy
may let an app assign them, with `any_user` to people it never made. An app gives a role that
impersonates (by the workspace's own permission table) only to a bot user or a user it created;
before, the adapter sent the grant to such a person."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rcfake import FakeWorkspace, remote_on
from test_remote_moderation_role_is_privileged import DEFAULTS

from host.server.errors import Forbidden
from host.server.principals import SYSTEM, Caller

APP = Caller("a", "in-a", "au")


def _workspace(user: dict[str, Any], table: list[dict[str, Any]] = DEFAULTS) -> FakeWorkspace:
    return FakeWorkspace({
        "GET permissions.listAll": lambda q, b: (200, {"update": table}),
        "GET users.info": lambda q, b: (200, {"user": user}),
        "POST roles.addUserToRole": lambda q, b: (200, {"success": True})})


PERSON = {"_id": "u1", "username": "alice", "type": "user", "roles": ["user", "livechat-agent"]}


def test_a_person_is_not_given_a_role_that_impersonates(tmp_path: Path) -> None:
    """(`app` is admin-class on a workspace already: refused as privileged.)"""
    fake = _workspace(PERSON)
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Forbidden, match="message-impersonate"):
        rs.roles_assign(APP, "u1", "bot", op_id="op-1")
    assert not fake.sent("POST", "roles.addUserToRole")


def test_a_custom_role_the_workspace_lets_impersonate_counts_too(tmp_path: Path) -> None:
    table = [*(r for r in DEFAULTS if r["_id"] != "message-impersonate"),
             {"_id": "message-impersonate", "roles": ["admin", "bot", "app", "relay"]}]
    fake = _workspace(PERSON, table)
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Forbidden, match="message-impersonate"):
        rs.roles_assign(APP, "u1", "relay", op_id="op-1")
    assert not fake.sent("POST", "roles.addUserToRole")


def test_a_bot_user_a_holder_its_own_user_and_the_operator_may(tmp_path: Path) -> None:
    bot = {"_id": "u1", "username": "relay", "type": "bot", "roles": ["user"]}
    holder = {**PERSON, "roles": ["user", "bot"]}  # the grant adds no power
    for i, (user, caller, own) in enumerate(((bot, APP, False), (holder, APP, False),
                                             (PERSON, SYSTEM, False), (PERSON, APP, True))):
        fake = _workspace(user)
        rs = remote_on(fake, tmp_path / str(i))
        if own:
            rs.owned.record_user("u1", "alice", created_by_app="a", app_id=None, now=0.0)
        rs.roles_assign(caller, "u1", "bot", op_id="op-1")
        assert len(fake.sent("POST", "roles.addUserToRole")) == 1
