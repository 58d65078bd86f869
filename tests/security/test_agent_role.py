"""Attack: making livechat agents by handing out the `livechat-agent` role (DESIGN rule 11).

On Rocket.Chat the role *is* being an agent. An app the operator let give that role (a
roles.assign or users.create rule listing it) but never granted `livechat.agents` made agents
anyway — by the bridge and by the REST bridge's `roles.addUserToRole` — around that
permission's consent, its rules and its quotas. Through a real host, each route is refused
as the livechat.add_agent it amounts to, audited, and the user never holds the role."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM

GIVER = '''
from stockade import App, StockadeError

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = {}
        def attempt(name, fn):
            try:
                out[name] = ["ok", fn()]
            except StockadeError as e:
                out[name] = [e.code, str(e)]
        bot = ctx.users.create("giver-bot", "Bot", type="bot", roles=["bot"])
        out["bot"] = bot["id"]
        attempt("create", lambda: ctx.users.create("giver-agent", "A", type="bot",
                                                   roles=["livechat-agent"])["id"])
        attempt("assign", lambda: ctx.roles.assign(bot["id"], "livechat-agent")["roles"])
        attempt("rest", lambda: ctx.rest.call("POST", "/api/v1/roles.addUserToRole",
                                              {"roleName": "livechat-agent",
                                               "userId": bot["id"]})["status"])
        return out
'''

POLICY = '''
schema = 1
name = "agentrole"
[[rule]]
id = "giver-roles"
effect = "permit"
apps = ["giver"]
actions = ["roles.assign", "users.create"]
[rule.when]
roles = ["bot", "livechat-agent"]
user_types = ["bot"]
[[rule]]
id = "giver-read"
effect = "permit"
apps = ["giver"]
actions = ["livechat.read"]
[[rule]]
id = "giver-rest"
effect = "permit"
apps = ["giver"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/roles.addUserToRole"]
[[quota]]
id = "giver-roles-rate"
apps = ["giver"]
action = "roles.assign"
limit = 10
window = "1h"
[[quota]]
id = "giver-accounts"
apps = ["giver"]
action = "users.create"
limit = 5
window = "1h"
'''

PERMS = ["users.create", "roles.assign", "server.rest", "livechat.read"]  # no livechat.agents


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[Host]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "agentrole", POLICY)
    install(home, write_app(tmp_path / "apps", "giver", PERMS, ["livechat.room_started"],
                            GIVER))
    with Host(home, config=HostConfig()) as h:
        yield h


def test_the_agent_role_cannot_stand_in_for_the_agents_permission(host: Host) -> None:
    runner = next(iter(host.runners.values()))
    out: dict[str, Any] = runner.submit("livechat.room_started", {}, 15.0).result(30)
    for route in ("create", "assign", "rest"):
        code, message = out[route]
        assert code == "permission_denied", (route, out[route])
        assert "amounts to livechat.add_agent" in message and "livechat.agents" in message
    bot = host.server.users_get(SYSTEM, out["bot"])
    assert bot["roles"] == ["bot"]
    assert host.server.count_users_created_by("giver") == 1  # the bot; never the agent
    assert not any(a["user_id"] == out["bot"] for a in host.server.list_agents())
    denials = [e.body for e in host.ledger.audit.tail(200)
               if e.body.get("kind") == "decision" and e.body.get("allowed") is False]
    assert {d["action"] for d in denials} == {"users.create", "roles.assign"}
    assert len(denials) == 3
    assert all(d["code"] == "permission_denied" for d in denials)
    assert any(d.get("route") == "POST /api/v1/roles.addUserToRole" for d in denials)
