"""A custom global role holding a power over every room (delete any room or message, edit
others' messages, ban, set owners, read or transfer every livechat conversation) — powers
Rocket.Chat's defaults give only to admin, owner/moderator and the livechat managers — read as
ordinary to `rolepower.py` (only admin-side powers counted): an app could grant it to its users.
Rocket.Chat's default table for the roles apps do grant (user, bot, app, livechat-agent) still
leaves them ordinary."""
from __future__ import annotations

from pathlib import Path

import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.errors import Forbidden
from host.server.principals import Caller
from host.server.remote.rolepower import powerful_roles

# Every permission Rocket.Chat's defaults (upsertPermissions) give the roles apps grant.
_HELD = {
    "user": ("create-c", "create-d", "create-p", "create-personal-access-tokens",
             "delete-own-message", "leave-c", "leave-p", "mention-all", "mention-here",
             "view-c-room", "view-d-room", "view-history", "view-p-room", "preview-c-room",
             "view-outside-room", "create-team", "mobile-upload-file", "videoconf-ring-users"),
    "bot": ("api-bypass-rate-limit", "create-c", "create-d", "create-p",
            "join-without-join-code", "leave-c", "leave-p", "send-many-messages", "view-c-room",
            "view-d-room", "view-joined-room", "message-impersonate",
            "bypass-time-limit-edit-and-delete"),
    "guest": ("view-d-room", "view-joined-room", "view-p-room"),
    "anonymous": ("leave-c", "leave-p", "view-c-room", "view-history", "view-joined-room",
                  "view-p-room", "preview-c-room"),
    "livechat-agent": ("change-livechat-room-visitor", "view-l-room",
                       "view-omnichannel-contact-center", "edit-omnichannel-contact",
                       "close-livechat-room", "on-hold-livechat-room", "view-livechat-queue",
                       "view-livechat-room-customfields", "edit-livechat-room-customfields",
                       "view-agent-extension-association", "inbound-voip-calls"),
}
_HELD["app"] = _HELD["bot"]
DEFAULTS = [{"_id": p, "roles": ["admin", *sorted(r for r, ps in _HELD.items() if p in ps)]}
            for p in sorted({p for ps in _HELD.values() for p in ps})]


@pytest.mark.parametrize("power", ["force-delete-message", "delete-c", "edit-message",
                                   "set-owner", "view-livechat-rooms", "transfer-livechat-guest"])
def test_a_custom_role_with_a_power_over_every_room_is_privileged(tmp_path: Path,
                                                                   power: str) -> None:
    table = {"update": [*DEFAULTS, {"_id": power, "roles": ["admin", "cleaner"]}]}
    fake = FakeWorkspace({"GET permissions.listAll": lambda q, b: (200, table),
                          "GET users.info": lambda q, b: (200, {"user": {
                              "_id": "u1", "username": "bob", "roles": ["user"]}}),
                          "POST roles.addUserToRole": lambda q, b: (200, {"success": True})})
    rs = remote_on(fake, tmp_path)
    with pytest.raises(Forbidden, match="privileged role"):
        rs.roles_assign(Caller("a", "in-a", "au"), "u1", "cleaner", op_id="op-1")
    assert not fake.sent("POST", "roles.addUserToRole")


def test_the_roles_apps_grant_stay_ordinary_under_rocketchats_defaults() -> None:
    powerful = powerful_roles({"update": DEFAULTS})
    assert not powerful & {"user", "bot", "app", "guest", "anonymous", "livechat-agent"}
