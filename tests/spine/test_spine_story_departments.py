"""Issue 24, departments, through the real host and a confined child: an app reads departments
(by id, by name, the list) under livechat.read and puts the agents it created into one under
livechat.agents; it cannot move an agent it did not create (attack), and routing then sends the
department's visitors to its bot."""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host
from host.server.principals import SYSTEM

SRC = '''
from stockade import App, PermissionDenied

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = {}
        out["list"] = [d["name"] for d in ctx.livechat.list_departments()]
        sales = ctx.livechat.get_department("SALES")  # by name, case-insensitive
        out["by_id"] = ctx.livechat.get_department(sales["id"])["name"]
        bot = ctx.users.create(username="sales-bot", name="Sales Bot", type="bot")
        ctx.livechat.add_agent(bot["id"])
        ctx.livechat.set_agent_status(bot["id"], "available")
        out["added"] = ctx.livechat.add_department_agent("Sales", bot["id"])["agents"]
        out["bot"] = bot["id"]
        for verb in ("add_department_agent", "remove_department_agent"):
            try:
                getattr(ctx.livechat, verb)(sales["id"], event["human"])
                out[verb] = "moved"
            except PermissionDenied as e:
                out[verb] = str(e)
        return out
'''

POLICY = '''
schema = 1
name = "deps"
[[rule]]
id = "deps"
effect = "permit"
apps = ["router"]
actions = ["users.create", "livechat.agents", "livechat.read"]
[rule.when]
user_types = ["bot"]
'''


@pytest.fixture()
def host(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "deps", POLICY)
    install(home, write_app(tmp_path / "apps", "router",
                            ["users.create", "livechat.agents", "livechat.read"],
                            ["livechat.room_started"], SRC))
    with Host(home) as h:
        yield h


def test_departments_read_and_own_agents_assigned_never_others(host: Host) -> None:
    s = host.server
    human = s.users_create(SYSTEM, "hank", "Hank", "user")["id"]
    s.livechat_add_agent(SYSTEM, human)
    support = s.add_department("Support", [human])
    sales = s.add_department("Sales")
    runner = next(iter(host.runners.values()))
    out = runner.submit("livechat.room_started", {"human": human}, 10.0).result(30)
    assert out["list"] == ["Sales", "Support"] and out["by_id"] == "Sales"
    assert out["added"] == [out["bot"]]
    # attack: the human agent is not the app's to move, in or out
    assert "own users only" in out["add_department_agent"]
    assert "own users only" in out["remove_department_agent"]
    assert s.livechat_get_department(SYSTEM, sales["id"])["agents"] == [out["bot"]]
    assert s.livechat_get_department(SYSTEM, support["id"])["agents"] == [human]
    v = s.save_visitor("dep-visitor-1", name="Vic")
    assert s.visitor_start_room(v["id"], sales["id"])["served_by"] == out["bot"]
