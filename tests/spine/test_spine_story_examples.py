"""Issue 24's Done-when, with the real example apps through the real host (confined children,
the gate, the demo policy, the embedded server and its widget REST endpoints):

- proxy-agent: the visitor's own view shows the external agent's name on EVERY relayed message;
- chatbot-handover: answers as its own bot account, which it put into a department by name;
- uninstall leaves no routable agent unless the operator says so.
"""
from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from host.apps.installs import InstallStore
from host.apps.operations import install_package
from host.apps.packages import package_folder
from host.apps.publisher import TrustStore, check_signature
from host.bench.rest_http import serving
from host.cli.main import root
from host.cli.output import err_console
from host.clock import SystemClock
from host.demo.crm import DemoCrm
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DANA = "Dana (Acme Support)"
LIVE_AGENT_HOST = "liveagent.localtest"


def _install(home: Home, app_id: str, settings: dict[str, Any] | None = None) -> None:
    pkg, _zip = package_folder(EXAMPLES / "apps" / app_id)
    install_package(home, pkg, check_signature(pkg, TrustStore(home.trust_dir)),
                    pkg.manifest.asked, policy_revision=None, settings=settings)


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[Host, EmbeddedServer, DemoCrm, dict[str, str]]]:
    home = Home(tmp_path / "home").ensure()
    shutil.copy(EXAMPLES / "policies" / "demo.toml", home.policies_dir)
    server = EmbeddedServer(home.server_db, SystemClock())
    # The operator's server: a human in Support; departments the apps are told by name.
    hana = server.users_create(SYSTEM, "hana", "Hana", "user")["id"]
    server.livechat_add_agent(SYSTEM, hana)
    server.set_agent_status(hana, "available")
    deps = {"Support": server.add_department("Support", [hana])["id"],
            "Salesforce": server.add_department("Salesforce")["id"],
            "Bot": server.add_department("Bot")["id"], "hana": hana}
    live_agent = DemoCrm("unused-key").start()
    _install(home, "proxy-agent",
             {"live_agent_url": f"http://{LIVE_AGENT_HOST}:{live_agent.port}/chat"})
    _install(home, "chatbot-handover")
    config = HostConfig(resolver_overrides={LIVE_AGENT_HOST: "127.0.0.1"})
    try:
        with Host(home, config=config) as h:
            yield h, server, live_agent, deps
    finally:
        live_agent.stop()


def _app_user(h: Host, app_id: str) -> str:
    rec = InstallStore(h.home.host_db).by_app(app_id)
    assert rec is not None and rec.app_user_id is not None
    return rec.app_user_id


def test_the_visitor_sees_the_external_agent_on_every_relayed_message(world) -> None:
    h, _server, live_agent, _deps = world
    server = h.server
    proxy = _app_user(h, "proxy-agent")
    # The host made the app user an agent in Salesforce at enable, as the manifest declares.
    assert server.livechat_get_department(SYSTEM, "Salesforce")["agents"] == [proxy]
    with serving(h.server) as (base, _srv, _uv), \
            httpx.Client(base_url=base, timeout=10, trust_env=False) as web:
        _visitor_sees_the_external_agent(h, server, proxy, live_agent, web)


def _visitor_sees_the_external_agent(h: Host, server: Any, proxy: str, live_agent: Any,
                                     web: httpx.Client) -> None:
    token = "visitor-widget-token-1"
    r = web.post("/api/v1/livechat/visitor", json={"visitor": {
        "token": token, "name": "Vera", "customFields": [
            {"key": "externalAgentName", "value": DANA, "overwrite": True}]}})
    assert r.status_code == 200, r.text
    rid = web.get("/api/v1/livechat/room",
                  params={"token": token, "department": "Salesforce"}).json()["room"]["_id"]
    h.wait_idle(15)
    for text in ("Where is my order?", "And the invoice?"):
        r = web.post("/api/v1/livechat/message", json={"token": token, "rid": rid, "msg": text})
        assert r.status_code == 200, r.text
        h.wait_idle(15)
    history = web.get(f"/api/v1/livechat/messages.history/{rid}",
                      params={"token": token}).json()["messages"]
    from_app = [m for m in history if m["u"]["_id"] == proxy]
    # the greeting, then two replies for each of the two visitor messages
    assert len(from_app) == 5 and len(live_agent.chats) == 2
    assert [m.get("alias") for m in from_app] == [DANA] * 5
    assert all(m["appId"] == "proxy-agent" for m in from_app)
    room = server.livechat_get_room(SYSTEM, rid)
    assert room["served_by"] == proxy and room["agent_display"]["name"] == DANA


def test_the_chatbot_answers_as_its_own_bot_in_the_department_it_chose(world) -> None:
    h, _server, _live_agent, deps = world
    server = h.server  # the host's own server object: its writes reach the apps as events
    bot = server.users_get_by_username(SYSTEM, "chatbot-assistant")
    assert bot["created_by_app"] == "chatbot-handover" and bot["type"] == "bot"
    # The app put its bot into the department it found by name (the host did not).
    assert server.livechat_get_department(SYSTEM, deps["Bot"])["agents"] == [bot["id"]]
    v = server.save_visitor("visitor-bot-widget", name="Bea")
    room = server.visitor_start_room(v["id"], "Bot")
    assert room["served_by"] == bot["id"]
    h.wait_idle(15)
    server.visitor_send_message(v["id"], room["id"], "What are your opening hours?")
    h.wait_idle(15)
    said = [m for m in server.messages_list(SYSTEM, room["id"])
            if m["sender"]["type"] != "visitor"]
    assert [m["text"][:10] for m in said] == ["Hi! I'm th", "We're open"]
    assert all(m["sender"]["id"] == bot["id"] and m["app_id"] == "chatbot-handover"
               for m in said)
    assert _app_user(h, "chatbot-handover") not in {m["sender"]["id"] for m in said}
    # The audit names both identities in clear.
    audit = [json.loads(b) for (b,) in open_readonly(h.home.host_db, SystemClock())
             .store.conn().execute("SELECT body FROM audit ORDER BY seq")]
    sends = [a for a in audit if a.get("action") == "messages.send_as_user"
             and a.get("kind") == "decision"]
    assert len(sends) == 2
    assert all(a["app_id"] == "chatbot-handover" and a["actor"] == f"user {bot['id']}"
               for a in sends)


def test_uninstall_leaves_no_routable_agent_without_the_operator_saying_so(
    world, monkeypatch,
) -> None:
    h, _server, _live_agent, deps = world
    server = h.server
    bot = server.users_get_by_username(SYSTEM, "chatbot-assistant")["id"]
    proxy = _app_user(h, "proxy-agent")

    def run(*args: str) -> tuple[int, str, str]:
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)
        r = CliRunner().invoke(root, ["--home", str(h.home.root), *args])
        return r.exit_code, r.stdout, buf.getvalue()

    code, _out, err = run("app", "uninstall", "chatbot-handover", "--users", "keep", "--yes")
    assert code != 0 and "--agents" in err
    assert bot in server.livechat_get_department(SYSTEM, "Bot")["agents"]  # nothing changed
    code, _out, err = run("app", "uninstall", "chatbot-handover", "--users", "keep",
                          "--agents", "remove", "--yes")
    assert code == 0, err
    # proxy-agent: users deactivate takes its app user out of routing too.
    code, _out, err = run("app", "uninstall", "proxy-agent", "--users", "deactivate",
                          "--agents", "remove", "--yes")
    assert code == 0, err
    h.sync_installs()
    assert server.users_get(SYSTEM, bot)["active"]  # the operator kept the account
    assert {a["user_id"] for a in server.list_agents()} == {deps["hana"]}
    for dep, token in (("Bot", "visitor-after-1"), ("Salesforce", "visitor-after-2")):
        v = server.save_visitor(token, name="Late")
        assert server.visitor_start_room(v["id"], dep)["served_by"] is None, dep
    assert proxy not in {a["user_id"] for a in server.list_agents()}
