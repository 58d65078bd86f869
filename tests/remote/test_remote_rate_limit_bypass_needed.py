"""The service account's least-privilege role must hold `api-bypass-rate-limit`.

Rocket.Chat rate-limits every REST v1 route that sets no limit of its own, per route and client
address: `API_Enable_Rate_Limiter_Limit_Calls_Default` = 10 calls per
`API_Enable_Rate_Limiter_Limit_Time_Default` = 60,000 ms, answering 429 `error-too-many-requests`
past it (apps/meteor/app/api/server/api.ts, `enforceRateLimit`), unless the caller holds
`api-bypass-rate-limit` (admin, bot and app by default; never a custom role). The stand-in has
no such limit, and its service account is an admin: a role built from the documented table
passed `rocketchat check`, and on a real workspace the host's seat upkeep (`users.info` per
app-created user), its webhook worker (`rooms.info` per webhook) and the apps' calls would each
stop at 10 a minute."""
from __future__ import annotations

from pathlib import Path

import httpx
from rcfake import FakeWorkspace, remote_on

from host.server.remote.permcheck import NEEDED, check_account

# The permissions docs/ROCKETCHAT.md's step 1 listed before (and `rocketchat check` with them).
DOCUMENTED_BEFORE = (
    "create-user", "view-full-other-user-info", "edit-other-user-info",
    "edit-other-user-active-status", "assign-roles", "user-generate-access-token", "view-l-room",
    "view-livechat-rooms", "manage-livechat-agents", "manage-livechat-departments",
    "view-livechat-departments", "view-livechat-queue", "take-livechat-inquiry",
    "transfer-livechat-guest", "close-others-livechat-room")


def test_a_role_without_the_rate_limit_bypass_is_reported_missing(tmp_path: Path) -> None:
    perms = {"update": [{"_id": p, "roles": ["stockade", "admin"]} for p in DOCUMENTED_BEFORE]
             + [{"_id": "api-bypass-rate-limit", "roles": ["admin", "bot", "app"]}]}
    fake = FakeWorkspace({
        "GET me": lambda q, b: (200, {"_id": "svc", "username": "stockade",
                                      "roles": ["stockade"]}),
        "GET permissions.listAll": lambda q, b: (200, perms),
        "POST users.createToken": lambda q, b: (200, {"data": {"authToken": "t"}})})
    rs = remote_on(fake, tmp_path / "host")
    real = fake.handle

    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/info":
            return httpx.Response(200, json={"version": "7.4.0"})
        return real(req)
    rs.client.http = httpx.Client(base_url=rs.client.base, transport=httpx.MockTransport(handle))
    try:
        rep = check_account(rs)
    finally:
        rs.close()
    assert rep.missing == ["api-bypass-rate-limit"], rep.to_json()
    assert not rep.ok
    assert any("missing permission api-bypass-rate-limit" in ln and "429" in ln
               for ln in rep.lines()), rep.lines()
    assert "api-bypass-rate-limit" in NEEDED
