"""Which roles on a Rocket.Chat workspace carry power, read from the workspace itself.

DESIGN rule 10: an app never grants an admin-class role. On a workspace the fixed list
(`core.ADMIN_CLASS_ROLES`) and the operator's `privileged_roles` name the roles Stockade knows
of; an operator's custom role given admin's powers on the workspace but never named in the config
would otherwise look ordinary, and an app allowed to assign it would hand out those powers. So a
role also counts as privileged when the workspace's permission table (`GET permissions.listAll`)
shows it holding any permission in `ROLE_POWERS` or `MODERATION_POWERS`, or any setting's
permission.

The table is read at most once per `ROLE_POWER_TTL_S`. When it cannot be read (and the last
reading is older than that) the question is not answered: `Unavailable`, so the call is refused
for now, never decided on a guess.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from host.server.errors import ServerError, Unavailable
from host.server.impersonation import IMPERSONATION_POWERS

# Rocket.Chat permissions whose holder administers the workspace or acts around Stockade's rules
# (creating users past the seat ceiling, assigning roles, minting tokens, changing settings,
# managing apps and integrations, livechat management). By Rocket.Chat's defaults only `admin`
# and the livechat manager/monitor roles hold them; `user`, `bot`, `app`, `guest` and
# `livechat-agent` hold none. Guards: an app granting a custom role that carries any of them.
ROLE_POWERS = frozenset({
    "access-permissions", "access-setting-permissions", "add-oauth-service", "add-all-to-room",
    "assign-admin-role", "assign-roles", "bulk-register-user", "create-user", "delete-user",
    "edit-other-user-active-status", "edit-other-user-avatar", "edit-other-user-e2ee",
    "edit-other-user-info", "edit-other-user-password", "edit-other-user-totp",
    "edit-privileged-setting", "logout-other-user", "mail-messages", "manage-apps",
    "manage-assets", "manage-cloud", "manage-email-inbox", "manage-incoming-integrations",
    "manage-livechat-agents", "manage-livechat-departments", "manage-livechat-managers",
    "manage-oauth-apps", "manage-outgoing-integrations", "manage-own-incoming-integrations",
    "manage-own-outgoing-integrations", "manage-selected-settings", "manage-user-status",
    "register-on-cloud", "restart-server", "run-import", "run-migration", "send-mail",
    "sync-auth-services-users", "test-admin-options", "user-generate-access-token",
    "view-full-other-user-info", "view-logs", "view-privileged-setting",
    "view-room-administration", "view-user-administration",
})
# Powers over every room and every conversation, which Rocket.Chat's defaults give only to
# `admin`, the room-scoped `owner` / `moderator` and the livechat manager/monitor (none to
# `user`, `bot`, `app`, `guest`, `anonymous` or `livechat-agent`: Rocket.Chat's
# upsertPermissions). A custom global role holding one acts on every room its holder can see:
# deletes rooms and any message, edits others' messages, bans, sets owners, reads every
# livechat conversation, transfers or closes other agents' chats. Guards: an app granting such a
# role to its users (it read as ordinary: only the admin-side powers above counted).
MODERATION_POWERS = frozenset({
    "add-user-to-any-c-room", "add-user-to-any-p-room", "archive-room", "unarchive-room",
    "ban-user", "mute-user", "remove-user", "clean-channel-history", "delete-c", "delete-d",
    "delete-p", "delete-team", "delete-message", "force-delete-message", "edit-message",
    "edit-room", "edit-room-retention-policy", "set-moderator", "set-owner", "set-leader",
    "set-readonly", "toggle-room-e2e-encryption", "view-other-user-channels", "view-all-teams",
    "view-all-team-channels", "view-join-code", "view-statistics", "get-server-info",
    "view-federation-data", "view-import-operations", "manage-emoji", "manage-sounds",
    "access-mailer", "manage-chatpal", "remove-slackbridge-links", "clear-oembed-cache",
    # livechat management (the managers' and monitors')
    "view-livechat-rooms", "view-livechat-manager", "close-others-livechat-room",
    "on-hold-others-livechat-room", "save-others-livechat-room-info", "transfer-livechat-guest",
    "remove-closed-livechat-rooms", "remove-closed-livechat-room", "remove-livechat-department",
    "add-livechat-department-agents", "view-livechat-current-chats",
    "view-livechat-real-time-monitoring", "view-livechat-analytics",
    "send-omnichannel-chat-transcript", "manage-voip-call-settings",
    "manage-voip-contact-center-settings", "manage-agent-extension-association",
})
# Rocket.Chat's per-setting permissions (`change-setting-<id>`): each changes a workspace setting.
SETTING_PERMISSION_PREFIX = "change-setting-"
# How long one reading of the permission table answers (s). Guards the workspace's rate limit
# (one request a minute at most); a role given power on the workspace counts within it.
ROLE_POWER_TTL_S = 60.0


def powerful_roles(doc: Any) -> frozenset[str]:
    """The roles holding a power in a `permissions.listAll` answer ({update: [{_id, roles}]})."""
    return _holders(doc, lambda pid: pid in ROLE_POWERS or pid in MODERATION_POWERS
                    or pid.startswith(SETTING_PERMISSION_PREFIX))


def impersonating_roles(doc: Any) -> frozenset[str]:
    """The roles holding a permission that changes whose name a message shows
    (`host.server.impersonation`) in a `permissions.listAll` answer."""
    return _holders(doc, lambda pid: pid in IMPERSONATION_POWERS)


def _holders(doc: Any, counts: Callable[[str], bool]) -> frozenset[str]:
    """The roles holding a permission `counts` picks in a `permissions.listAll` answer."""
    rows = doc.get("update") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise Unavailable("the workspace's permission table has no 'update' list")
    out: set[str] = set()
    for row in rows:
        if not isinstance(row, dict):
            continue
        pid, roles = row.get("_id"), row.get("roles")
        # One role's name alone, not in a list, is that role holding the permission: Rocket.Chat
        # checks `{_id: permission, roles: {$in: the user's roles}}`, which matches a string
        # field equal to one of them. Skipped, such a role read as ordinary to an app.
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(pid, str) or not isinstance(roles, list):
            continue
        if counts(pid):
            out.update(r for r in roles if isinstance(r, str))
    return frozenset(out)


def role_names(doc: Any) -> dict[str, frozenset[str]]:
    """Each role's names in a `roles.list` answer ({roles: [{_id, name}]}): its `_id` and its
    `name`, each mapped to both. Since Rocket.Chat 6 a custom role's `_id` is random, and the
    permission table and users' `roles` name it by that `_id`, while `roles.addUserToRole`
    takes its name (or either: `findOneByIdOrName`)."""
    rows = doc.get("roles") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise Unavailable("the workspace's role list has no 'roles' list")
    out: dict[str, frozenset[str]] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        names = frozenset(v for v in (row.get("_id"), row.get("name")) if isinstance(v, str))
        for n in names:
            out[n] = out.get(n, frozenset()) | names
    return out


class RolePowers:
    """The workspace's powerful roles, read through `fetch` (the permission table) and
    `fetch_names` (the role list: a custom role's `_id` and name differ), kept `ttl_s` s."""

    def __init__(self, fetch: Callable[[], Any], fetch_names: Callable[[], Any] | None = None,
                 *, ttl_s: float = ROLE_POWER_TTL_S,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self._fetch_names, self._ttl, self._now = fetch, fetch_names, ttl_s, now
        self._lock = threading.Lock()
        self._roles: frozenset[str] = frozenset()
        self._impersonating: frozenset[str] = frozenset()
        self._names: dict[str, frozenset[str]] = {}
        self._until = float("-inf")

    def roles(self) -> frozenset[str]:
        """The roles holding a power now (Unavailable when the table cannot be read)."""
        return self._read()[0]

    def names_of(self, role: str) -> frozenset[str]:
        """`role` and every other name the workspace knows that role by (its `_id`, its name)."""
        return self._read()[1].get(role, frozenset()) | {role}

    def impersonating(self, role: str) -> bool:
        """Whether `role` (by any of its names) may change whose name a message shows."""
        return not self.names_of(role).isdisjoint(self._read()[2])

    def _read(self) -> tuple[frozenset[str], dict[str, frozenset[str]], frozenset[str]]:
        with self._lock:
            if self._now() < self._until:
                return self._roles, self._names, self._impersonating
            try:
                table = self._fetch()
                roles, impersonating = powerful_roles(table), impersonating_roles(table)
                names = role_names(self._fetch_names()) if self._fetch_names else {}
            except ServerError as exc:
                raise Unavailable("cannot tell which workspace roles carry power "
                                  f"(GET permissions.listAll / roles.list: {exc.message})"
                                  ) from None
            self._roles, self._names, self._impersonating = roles, names, impersonating
            self._until = self._now() + self._ttl
            return roles, names, impersonating

    def any_powerful(self, roles: Iterable[str]) -> bool:
        """Whether any of `roles` (by any of its names) holds a power on the workspace."""
        wanted = {n for r in roles for n in self.names_of(r)}
        return bool(wanted) and not self.roles().isdisjoint(wanted)
