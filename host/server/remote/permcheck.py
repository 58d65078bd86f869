"""What `stockade rocketchat check` and `stockade doctor` say about the workspace: reachable,
its version (`GET /api/info`), who the service account is (`GET me`), and which Rocket.Chat
permissions its roles hold (`GET permissions.listAll`), against exactly the list Stockade
needs (`NEEDED`): what is missing, and any extra power (admin, or a permission on `POWERFUL`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from host.inert import visible
from host.server.errors import ServerError
from host.server.remote.server import RemoteServer

# Each Rocket.Chat permission the adapter's calls need, and the call that needs it. This is the
# least-privilege role an operator creates for the service account (docs/ROCKETCHAT.md).
# (`message-impersonate`, for relay_message's alias, is checked on the sending app user, not
# on this account: the doc says which role gets it.)
NEEDED: dict[str, str] = {
    "create-user": "users.create (apps' users.create, each app's own user)",
    "view-full-other-user-info": "users.info / users.list with custom fields",
    "edit-other-user-info": "users.update (custom fields)",
    "edit-other-user-active-status": "users.setActiveStatus (deactivate, app users)",
    "assign-roles": "roles.addUserToRole / removeUserFromRole (the gate refuses admin-class)",
    "user-generate-access-token": "users.createToken (send as an app's user)",
    "view-l-room": "rooms.info, channels.messages, chat.getMessage on livechat rooms",
    "view-livechat-rooms": "livechat/rooms",
    "manage-livechat-agents": "livechat/users/agent, livechat/agent.status",
    "manage-livechat-departments": "livechat/department/{id}/agents",
    "view-livechat-departments": "livechat/department",
    "view-livechat-queue": "livechat/inquiries.getOne",
    "take-livechat-inquiry": "livechat/inquiries.take",
    "transfer-livechat-guest": "livechat/room.forward",
    "close-others-livechat-room": "livechat/room.closeByUser",
    # Rocket.Chat limits each REST route to 10 calls a minute per client address
    # (API_Enable_Rate_Limiter_Limit_Calls_Default / _Time_Default) for a caller without it:
    # the host's seat upkeep and webhook reads alone pass that (429 error-too-many-requests).
    "api-bypass-rate-limit": "every call: without it each route answers 429 past 10 calls a "
                             "minute (the workspace's default REST rate limit)",
}
# Powers Stockade never needs whose presence the check names (a service account with them can
# do far more than any app should reach through it, if its token leaks).
POWERFUL = frozenset({
    "delete-user", "edit-privileged-setting", "view-privileged-setting", "manage-apps",
    "manage-oauth-apps", "manage-outgoing-integrations", "manage-incoming-integrations",
    "access-permissions", "manage-own-integrations", "bulk-register-user", "remove-user",
    "manage-cloud",
})


@dataclass
class AccountReport:
    url: str
    reachable: bool = False
    version: str | None = None
    account: str | None = None
    roles: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra_power: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.problem is None and not self.missing

    def warnings(self) -> list[str]:
        out = []
        if "admin" in self.roles:
            out.append("the service account is an admin: give it a role with only the "
                       "permissions below")
        if self.extra_power:
            out.append(f"extra power Stockade never uses: {', '.join(self.extra_power)}")
        return out

    def shown(self) -> dict[str, str]:
        """The workspace's own words (its version, the account's name and roles, the text of a
        refusal) as they may reach a screen: one line each, escapes visible, capped (DESIGN
        rule 12: a workspace could otherwise clear the operator's terminal or start a line of
        its own that reads as the host's). `to_json` keeps them exact."""
        return {"url": visible(self.url), "version": visible(self.version),
                "account": visible(self.account), "problem": visible(self.problem),
                "roles": ", ".join(visible(r, limit=64) for r in self.roles)}

    def lines(self) -> list[str]:
        shown = self.shown()
        out = [f"workspace {shown['url']}: " + (f"reachable, version {shown['version']}"
                                                if self.reachable else "NOT reachable")]
        if self.problem:
            out.append(f"  problem: {shown['problem']}")
        if self.account:
            out.append(f"  service account {shown['account']}, roles: {shown['roles']}")
        for p in self.missing:
            out.append(f"  missing permission {p}: needed for {NEEDED[p]}")
        out += [f"  warning: {w}" for w in self.warnings()]
        out.append("  least-privilege role for the service account (Rocket.Chat permissions):")
        out += [f"    {p:<32} {why}" for p, why in NEEDED.items()]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "url": self.url, "reachable": self.reachable,
                "version": self.version, "account": self.account, "roles": self.roles,
                "missing": self.missing, "extra_power": self.extra_power,
                "warnings": self.warnings(), "problem": self.problem,
                "needed": dict(NEEDED)}


def check_account(remote: RemoteServer) -> AccountReport:
    """Ask the workspace (five requests, and a logout at close); never raises for a workspace
    problem."""
    rep = AccountReport(url=remote.client.base)
    try:
        info = remote.client.info()
        rep.reachable = True
        nested = info.get("info")
        rep.version = str(info.get("version")
                          or (nested.get("version") if isinstance(nested, dict) else None)
                          or "unknown (the server hides it from this account)")
        me = remote.get("me")
        rep.account = str(me.get("username") or me.get("_id"))
        rep.roles = sorted(_strings(me.get("roles")))
        listed = remote.get("permissions.listAll")
    except ServerError as exc:
        rep.problem = exc.message
        return rep
    # Read leniently, never raising: a field of another type than Rocket.Chat's (a number, an
    # object) is no role and no permission (it stopped `doctor` with a traceback).
    held = set()
    mine = set(rep.roles)
    rows = listed.get("update")
    for p in rows if isinstance(rows, list) else []:
        if isinstance(p, dict) and isinstance(p.get("_id"), str) \
                and mine & _strings(p.get("roles")):
            held.add(p["_id"])
    rep.missing = sorted(set(NEEDED) - held)
    rep.extra_power = sorted(held & POWERFUL)
    rep.problem = _mint_check(remote)
    return rep


def _mint_check(remote: RemoteServer) -> str | None:
    """users.createToken for the service account itself, with the stored secret: what every
    message an app sends needs (Rocket.Chat 8+ refuses it without the workspace's
    CREATE_TOKENS_FOR_USERS_SECRET). The sign-in is logged out when `remote` closes."""
    try:
        remote.as_user(remote.client.user_id)
    except ServerError as exc:
        return exc.message
    return None


def _strings(raw: object) -> set[str]:
    """The strings of a list field (roles); anything else names none."""
    return {r for r in raw if isinstance(r, str)} if isinstance(raw, list) else set()
