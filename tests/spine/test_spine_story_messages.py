"""Issue 24 through the real host and a confined child: a proxy-agent app relays an external
agent's words under that agent's name and avatar (the visitor's widget history shows the
display, staff and the audit still see the app user), and a chatbot app speaks as the bot
account it created, never as any other user."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apphelp import install, write_app, write_policy

from host.bench.rest_http import serving
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host
from host.server.principals import SYSTEM

STEPS_SRC = '''
from stockade import App, PermissionDenied, InvalidArgument

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        made = {}
        for action, kwargs in event["steps"]:
            kwargs = {k: made.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
            bridge, name = action.split(".")
            try:
                r = getattr(getattr(ctx, bridge), name)(**kwargs)
                if action == "users.create":
                    made["$bot"] = r["id"]
                out.append(["ok", r])
            except PermissionDenied as e:
                out.append(["PermissionDenied", str(e)])
            except InvalidArgument as e:
                out.append(["InvalidArgument", str(e)])
        return out
'''

POLICY = '''
schema = 1
name = "story"
[[rule]]
id = "proxy"
effect = "permit"
apps = ["proxy"]
actions = ["livechat.agent-display", "livechat.read"]
[[rule]]
id = "chatbot"
effect = "permit"
apps = ["chatbot"]
actions = ["users.create", "messages.send-as-own-users", "livechat.read"]
[rule.when]
user_types = ["bot"]
'''


@pytest.fixture()
def host(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "story", POLICY)
    install(home, write_app(tmp_path / "apps", "proxy", ["livechat.agent-display",
                                                          "livechat.read"],
                            ["livechat.room_started"], STEPS_SRC))
    install(home, write_app(tmp_path / "apps", "chatbot",
                            ["users.create", "messages.send-as-own-users", "livechat.read"],
                            ["livechat.room_started"], STEPS_SRC))
    with Host(home) as h:
        yield h


@pytest.fixture()
def web(host: Host) -> Iterator[httpx.Client]:
    """The visitor's widget: the REST API over real HTTP on loopback."""
    with serving(host.server) as (base, _server, _uv), \
            httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
        yield client


def _run(h: Host, app_id: str, steps: list) -> list:
    runner = next(r for r in h.runners.values() if r.app_id == app_id)
    return runner.submit("livechat.room_started", {"steps": steps}, 10.0).result(30)


def _audit(h: Host) -> list[dict]:
    conn = open_readonly(h.home.host_db, SystemClock()).store.conn()
    return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]


def _visitor_room(h: Host, web: httpx.Client, token: str) -> str:
    r = web.post("/api/v1/livechat/visitor", json={"visitor": {"token": token, "name": "Vic"}})
    assert r.status_code == 200, r.text
    r = web.get("/api/v1/livechat/room", params={"token": token})
    assert r.status_code == 200, r.text
    return str(r.json()["room"]["_id"])


def test_relayed_messages_show_the_external_agent_to_the_visitor(host: Host, web: httpx.Client) -> None:
    app_user = host.server.users_get_by_username(SYSTEM, "app.proxy")["id"]
    host.server.livechat_add_agent(SYSTEM, app_user)
    host.server.set_agent_status(app_user, "available")
    rid = _visitor_room(host, web, "visitor-token-0001")
    assert host.server.livechat_get_room(SYSTEM, rid)["served_by"] == app_user
    res = _run(host, "proxy", [
        ["livechat.relay_message", {"room_id": rid, "text": "Hi, Dana here",
                                    "alias": "Dana (Salesforce)",
                                    "avatar_url": "https://sf.example/dana.png"}],
    ])
    assert res[0][0] == "ok", res
    # The widget-facing history: the visitor sees Dana; `u` stays the real sender.
    r = web.get(f"/api/v1/livechat/messages.history/{rid}",
                params={"token": "visitor-token-0001"})
    (msg,) = [m for m in r.json()["messages"] if m["msg"] == "Hi, Dana here"]
    assert msg["alias"] == "Dana (Salesforce)"
    assert msg["avatar"] == "https://sf.example/dana.png"
    assert msg["u"]["_id"] == app_user and msg["appId"] == "proxy"
    audited = [a for a in _audit(host) if a.get("action") == "livechat.relay_message"]
    assert audited and audited[0]["allowed"] is True and audited[0]["app_id"] == "proxy"


def test_relay_is_refused_in_a_room_the_app_does_not_serve(host: Host, web: httpx.Client) -> None:
    """Attack: relaying into a room served by a human agent would put words in a stranger's
    room under a made-up name."""
    human = host.server.users_create(SYSTEM, "hal", "Hal", "user")["id"]
    host.server.livechat_add_agent(SYSTEM, human)
    host.server.set_agent_status(human, "available")
    rid = _visitor_room(host, web, "visitor-token-0002")
    res = _run(host, "proxy", [
        ["livechat.relay_message", {"room_id": rid, "text": "I am Hal", "alias": "Hal"}],
    ])
    assert res[0][0] == "PermissionDenied" and "serves room" in res[0][1]
    assert [m["text"] for m in host.server.messages_list(SYSTEM, rid)] == []


def test_chatbot_answers_as_its_own_bot_account_never_as_another_user(host: Host, web: httpx.Client) -> None:
    rid = _visitor_room(host, web, "visitor-token-0003")
    person = host.server.users_create(SYSTEM, "ann", "Ann", "user")["id"]
    other_bot = host.server.users_create(SYSTEM, "otherbot", "Other", "bot")["id"]
    app_user = host.server.users_get_by_username(SYSTEM, "app.chatbot")["id"]
    res = _run(host, "chatbot", [
        ["users.create", {"username": "rasa-bot", "name": "Rasa Bot", "type": "bot"}],
        ["messages.send_as", {"user_id": "$bot", "room_id": rid, "text": "Hello from Rasa"}],
        ["messages.send_as", {"user_id": person, "room_id": rid, "text": "I am Ann"}],
        ["messages.send_as", {"user_id": other_bot, "room_id": rid, "text": "me too"}],
    ])
    assert res[0][0] == "ok" and res[1][0] == "ok", res
    bot_id = res[0][1]["id"]
    assert res[2][0] == "PermissionDenied" and "own users only" in res[2][1]
    assert res[3][0] == "PermissionDenied"
    msgs = host.server.messages_list(SYSTEM, rid)
    assert [(m["sender"]["id"], m["app_id"], m["text"]) for m in msgs] == [
        (bot_id, "chatbot", "Hello from Rasa")]  # the bot speaks; the app is on record
    assert msgs[0]["sender"]["id"] != app_user
    # Audited with both identities, in clear: the app, and the user it spoke (or tried to
    # speak) as; an attempt to speak as a person names that person.
    decided = [a for a in _audit(host)
               if a.get("action") == "messages.send_as_user" and a.get("kind") == "decision"]
    assert [(a["allowed"], a["app_id"], a.get("actor")) for a in decided] == [
        (True, "chatbot", f"user {bot_id}"), (False, "chatbot", f"user {person}"),
        (False, "chatbot", f"user {other_bot}")]


def test_the_server_refuses_another_users_identity_even_if_a_policy_widens(
    host: Host, web: httpx.Client,
) -> None:
    """The own-users rule is the permission's meaning, enforced by the server as well as by the
    engine: a policy's any_user cannot let an app speak as a person."""
    from host.server.errors import Forbidden
    from host.server.principals import Caller

    rid = _visitor_room(host, web, "visitor-token-0004")
    person = host.server.users_create(SYSTEM, "bea", "Bea", "user")["id"]
    caller = Caller(app_id="chatbot", install_id="i", app_user_id=None)
    with pytest.raises(Forbidden):
        host.server.messages_send_as_user(caller, rid, person, "hi", op_id="op-x-1")
