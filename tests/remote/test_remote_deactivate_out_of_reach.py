"""Against a Rocket.Chat workspace too, no policy lets an app deactivate a user holding an
admin-class role (the workspace's admin, the host's own service account) or another app's own
user: the adapter refuses before `users.setActiveStatus` leaves. Before, an app whose policy
said `any_user` on `users.deactivate` deactivated the service account, and with it every app's
access to the workspace (see tests/security/test_deactivate_out_of_reach.py for the embedded
server)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.errors import Forbidden, Unavailable
from host.server.principals import Caller

APP = Caller("a", "in-a", "au")
DOCS: dict[str, dict[str, Any]] = {
    "boss": {"_id": "boss", "username": "boss", "roles": ["admin"], "active": True},
    "svc": {"_id": "svc", "username": "svc", "roles": ["user", "bot", "livechat-manager"],
            "active": True},
    "other": {"_id": "other", "username": "app.other", "roles": ["bot"], "active": True},
    "human": {"_id": "human", "username": "human", "roles": ["user"], "active": True},
    "au": {"_id": "au", "username": "app.a", "roles": ["bot"], "active": True},
    "unsaid": {"_id": "unsaid", "username": "unsaid", "active": True},  # roles not shown
}


def _workspace() -> FakeWorkspace:
    def info(q: dict[str, str], _b: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"user": DOCS[q["userId"]]}
    return FakeWorkspace({
        "GET permissions.listAll": lambda q, b: (200, {"update": []}),
        "GET users.info": info,
        "POST users.setActiveStatus": lambda q, b: (200, {"success": True}),
    })


@pytest.mark.parametrize("target", ["boss", "svc", "other"])
def test_an_app_never_deactivates_an_admin_class_user_or_another_apps_user(
        tmp_path: Path, target: str) -> None:
    fake = _workspace()
    rs = remote_on(fake, tmp_path)
    rs.owned.record_user("other", "app.other", created_by_app=None, app_id="other", now=0.0)
    rs.owned.record_user("au", "app.a", created_by_app=None, app_id="a", now=0.0)
    with pytest.raises(Forbidden):
        rs.users_deactivate(APP, target, op_id="op-1")
    assert not fake.sent("POST", "users.setActiveStatus")


@pytest.mark.parametrize("target", ["human", "au"])
def test_an_ordinary_user_and_the_apps_own_are_still_deactivated(tmp_path: Path,
                                                                 target: str) -> None:
    fake = _workspace()
    rs = remote_on(fake, tmp_path)
    rs.owned.record_user("au", "app.a", created_by_app=None, app_id="a", now=0.0)
    rs.users_deactivate(APP, target, op_id="op-1")
    assert [b for _q, b in fake.sent("POST", "users.setActiveStatus")] == [
        {"userId": target, "activeStatus": False}]


def test_a_user_whose_roles_the_workspace_does_not_show_is_not_deactivated(tmp_path: Path
                                                                          ) -> None:
    """No roles in the answer cannot tell an admin from a person: refused for now."""
    fake = _workspace()
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Unavailable):
        rs.users_deactivate(APP, "unsaid", op_id="op-1")
    assert not fake.sent("POST", "users.setActiveStatus")


def test_the_gate_is_told_who_the_target_is(tmp_path: Path) -> None:
    """The facts the gate decides with (`user_standing`), so its guardrail refuses these
    before admission: another app's own user from Stockade's record, a privileged role from
    users.info (only when a deactivation asks), a user whose roles are not shown refused for
    now."""
    fake = _workspace()
    rs = remote_on(fake, tmp_path)
    rs.owned.record_user("other", "app.other", created_by_app=None, app_id="other", now=0.0)
    assert rs.user_standing("boss", privileged=True) == (None, None, True)
    assert rs.user_standing("svc", privileged=True) == (None, None, True)
    assert rs.user_standing("human", privileged=True) == (None, None, False)
    assert rs.user_standing("other") == (None, "other", None)
    with pytest.raises(Unavailable):
        rs.user_standing("unsaid", privileged=True)
