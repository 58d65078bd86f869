"""Issue 24: uninstall leaves no routable agent without the operator saying so. A chatbot app
makes its bot account a livechat agent through the real host and gate; `stockade app
uninstall --users keep` then must either be told `--agents keep` (and warn that rooms will
still be routed to it) or stop routing to it."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from typer.testing import CliRunner

from host.cli.main import root
from host.cli.output import err_console
from host.clock import SystemClock
from host.home import Home
from host.runtime import Host
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM

BOT_SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        bot = ctx.users.create(username="helper-bot", name="Helper", type="bot")
        ctx.livechat.add_agent(bot["id"])
        ctx.livechat.set_agent_status(bot["id"], "available")
        return bot["id"]
'''

POLICY = '''
schema = 1
name = "bot"
[[rule]]
id = "bot"
effect = "permit"
apps = ["chatbot"]
actions = ["users.create", "livechat.agents", "livechat.read"]
[rule.when]
user_types = ["bot"]
'''


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch):
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "bot", POLICY)
    install(home, write_app(tmp_path / "apps", "chatbot",
                            ["users.create", "livechat.agents", "livechat.read"],
                            ["livechat.room_started"], BOT_SRC))
    with Host(home) as h:
        runner = next(iter(h.runners.values()))
        bot_id = runner.submit("livechat.room_started", {}, 10.0).result(30)
    server = EmbeddedServer(home.server_db, SystemClock())

    def run(*args: str) -> tuple[int, str, str]:
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)
        r = CliRunner().invoke(root, ["--home", str(home.root), *args])
        return r.exit_code, r.stdout, buf.getvalue()

    return server, bot_id, run


def _routed_to(server: EmbeddedServer, token: str) -> str | None:
    v = server.save_visitor(token, name="Vic")
    return server.visitor_start_room(v["id"])["served_by"]


def test_kept_users_need_an_agents_answer_and_remove_stops_routing(setup) -> None:
    server, bot_id, run = setup
    assert _routed_to(server, "visitor-before") == bot_id  # the bot is a routable agent
    code, _out, err = run("app", "uninstall", "chatbot", "--users", "keep", "--yes")
    assert code != 0 and "--agents" in err  # no silent default that keeps routing
    code, out, err = run("app", "uninstall", "chatbot", "--users", "keep", "--agents",
                         "remove", "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["agents"] == "remove"
    assert server.users_get(SYSTEM, bot_id)["active"]  # the account is kept...
    assert _routed_to(server, "visitor-after") is None  # ...but nobody routes to it


def test_agents_keep_warns_that_rooms_will_still_be_routed(setup) -> None:
    server, bot_id, run = setup
    code, out, err = run("app", "uninstall", "chatbot", "--users", "keep", "--agents", "keep",
                         "--yes", "--json")
    assert code == 0, err
    assert "rooms will still be routed" in err
    assert json.loads(out)["agents_routable"] == 1
    assert _routed_to(server, "visitor-after") == bot_id  # the operator said so
