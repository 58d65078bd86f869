"""Who may see and act on a livechat room through the REST API: Rocket.Chat's permission model.

The route table (`host/server/rest.py`) lets staff in; this decides which rooms. Rocket.Chat's
default permissions give a `livechat-agent` the rooms it serves and the queue of its departments
(`view-l-room`, limited by its room-access check), and give managers and admins every room
(`view-livechat-rooms`), others' rooms to close (`close-others-livechat-room`) and any room to
transfer. Without this, an agent read another agent's conversation (messages, the visitor's
e-mail, phone and widget token) and took over and closed another agent's room.
"""
from __future__ import annotations

from collections.abc import Iterable

from host.server.errors import Forbidden
from host.server.shapes import Room, User
from policies.vocabulary import IMPERSONATING_ROLES

# Permission -> the roles that hold it, as Rocket.Chat's defaults assign them.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view-l-room": frozenset({"admin", "livechat-manager", "livechat-agent"}),
    "view-livechat-rooms": frozenset({"admin", "livechat-manager"}),
    "close-livechat-room": frozenset({"admin", "livechat-manager", "livechat-agent"}),
    "close-others-livechat-room": frozenset({"admin", "livechat-manager"}),
    "transfer-livechat-guest": frozenset({"admin", "livechat-manager", "livechat-agent"}),
    "view-livechat-manager": frozenset({"admin", "livechat-manager"}),
    # users.generatePersonalAccessToken: a never-expiring credential; admins by default.
    "create-personal-access-tokens": frozenset({"admin"}),
    # chat.sendMessage's `alias` / `avatar`: another name and face shown to the visitor.
    # Rocket.Chat gives it to `bot` and `app` (an app's own user relays an external agent with
    # it; the remote adapter's relay_message sends it as that user), and admins here; never to
    # an agent, who could pose as anyone to its visitor.
    "message-impersonate": frozenset({"admin", *IMPERSONATING_ROLES}),
}


# What the embedded server answers to `GET permissions.listAll` (its roles' powers named as
# Rocket.Chat names them), so `stockade rocketchat check` can be tested against the stand-in.
# Admins hold every listed permission, as on a Rocket.Chat workspace.
_MANAGER_POWERS = ("view-l-room", "view-livechat-rooms", "manage-livechat-agents",
                   "manage-livechat-departments", "view-livechat-departments",
                   "view-livechat-queue", "take-livechat-inquiry", "transfer-livechat-guest",
                   "close-others-livechat-room", "close-livechat-room")
LISTED_PERMISSIONS: dict[str, frozenset[str]] = {
    **{p: frozenset({"admin", "livechat-manager"}) for p in _MANAGER_POWERS},
    **{p: frozenset({"admin"}) for p in (
        "create-user", "view-full-other-user-info", "edit-other-user-info",
        "edit-other-user-active-status", "assign-roles", "user-generate-access-token",
        "delete-user", "edit-privileged-setting", "manage-apps")},
    "message-impersonate": PERMISSIONS["message-impersonate"],
    # Rocket.Chat's REST rate limiter lets these roles' calls through (its defaults). The
    # stand-in itself limits no one: this row is for `rocketchat check`, which needs it.
    "api-bypass-rate-limit": frozenset({"admin", "bot", "app"}),
}


def has(identity: User | None, permission: str) -> bool:
    """Whether the identity's roles hold the permission."""
    return identity is not None and bool(PERMISSIONS[permission] & set(identity["roles"]))


def can_access(identity: User | None, room: Room, departments: Iterable[str]) -> bool:
    """A manager any room; an agent the rooms it serves, and the open, unassigned rooms of its
    departments' queue (a room with no department is everyone's queue)."""
    if identity is None or not has(identity, "view-l-room"):
        return False
    if has(identity, "view-livechat-rooms") or room["served_by"] == identity["id"]:
        return True
    return room["open"] and room["served_by"] is None and (
        room["department_id"] is None or room["department_id"] in set(departments))


def require(ok: bool, what: str) -> None:
    """Refuse with Rocket.Chat's 403 unless `ok`."""
    if not ok:
        raise Forbidden(f"not allowed: {what}")
