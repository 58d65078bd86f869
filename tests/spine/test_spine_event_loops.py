"""Events that apps' writes raise cannot loop between apps' handlers without end.

Two apps that each answer a `message.sent` by sending a message answered each other's messages
until both had spent their quota of bridge calls: one visitor message became 100 messages under
a quota of 50 sends each (1,200 under the shipped default of 600 calls a minute, in about five
seconds, with both apps unable to do anything else for that minute). An app answering its own
messages did the same alone. Each event now carries the depth of the write that raised it (a
person's: 0; an app's, made while it handled an event of depth d: d + 1), set by the host, and
one deeper than `MAX_EVENT_DEPTH` reaches no app: counted, audited once, the chain ended.

Real host, real confined children, real SQLite.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import build_rig

from host.apps.installs import InstallRecord
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host
from host.server.events import MAX_EVENT_DEPTH, Cause, emitting_cause, writing
from host.server.principals import SYSTEM

# Answers every message that is not its own app's: two of these answer each other.
ANSWERS_OTHERS = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        if msg["app_id"] != ctx.app_id:
            ctx.messages.send(msg["room_id"], "re: " + msg["text"][:40])
'''
# The same through the REST bridge (`rest.call` to chat.sendMessage, decided as
# messages.send): a way round the depth, were it carried by the bridge call and not the host.
ANSWERS_OTHERS_BY_REST = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        if msg["app_id"] != ctx.app_id:
            body = {"message": {"rid": msg["room_id"], "msg": "re: " + msg["text"][:40]}}
            assert ctx.rest.call("POST", "/api/v1/chat.sendMessage", body)["status"] == 200
'''
# Answers every message, its own too: it loops alone.
ANSWERS_ALL = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        ctx.messages.send(msg["room_id"], "again: " + msg["text"][:40])
'''
# Answers a visitor once per message: the legitimate reply a bot makes.
ANSWERS_VISITORS = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        if msg["sender"]["type"] == "visitor":
            ctx.messages.send(msg["room_id"], "hello, visitor")
'''
# Writes down every message it is handed.
OBSERVES = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        print("SAW " + str(msg["app_id"]) + ": " + msg["text"])
'''
# A quota well above the depth limit: the loop stopped before it, by the limit alone (before,
# by this quota: 2 x 50 messages).
SENDS_PER_APP = 50
POLICY = f'''
schema = 1
name = "loops"
[[rule]]
id = "talk"
effect = "permit"
apps = ["ping", "pong", "echo", "bot", "watcher"]
actions = ["messages.read", "messages.send"]
[[rule]]
id = "rest"
effect = "permit"
apps = ["rest-ping", "rest-pong"]
actions = ["messages.read", "messages.send", "server.rest"]
[rule.when]
rest_routes = ["POST /api/v1/chat.sendMessage"]
[[quota]]
id = "sends"
apps = ["ping", "pong", "echo", "bot", "watcher", "rest-ping", "rest-pong"]
action = "messages.send"
limit = {SENDS_PER_APP}
window = "1h"
scope = "install"
'''
PERMS = ["messages.read", "messages.send"]


def _home(tmp_path: Path, apps: dict[str, str]) -> tuple[Home, dict[str, InstallRecord]]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "loops", POLICY)
    recs = {app_id: install(home, write_app(
        tmp_path / "apps", app_id, [*PERMS, "server.rest"] if "rest" in app_id else PERMS,
        ["message.sent"], src)) for app_id, src in apps.items()}
    return home, recs


def _visitor_room(h: Host, token: str = "visitor-token-1") -> tuple[str, str]:
    v = h.server.save_visitor(token, "Eve", "eve@example.org", {})
    agent = h.server.users_create(SYSTEM, "agent-1", "Agent One", "user")
    h.server.livechat_add_agent(SYSTEM, agent["id"])
    h.server.set_agent_status(agent["id"], "available")
    return v["id"], h.server.visitor_start_room(v["id"])["id"]


def _texts(h: Host, room_id: str) -> list[tuple[str | None, str]]:
    return [(m["app_id"], m["text"]) for m in h.server.messages_list(SYSTEM, room_id, 500)]


def _loop_stops(home: Home) -> list[dict[str, Any]]:
    conn = open_readonly(home.host_db, SystemClock()).store.conn()
    bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit ORDER BY seq")]
    return [b for b in bodies if b.get("kind") == "supervisor" and b.get("event") == "loop_stopped"]


@pytest.mark.parametrize(("ping", "pong", "src"), [
    ("ping", "pong", ANSWERS_OTHERS), ("rest-ping", "rest-pong", ANSWERS_OTHERS_BY_REST)])
def test_two_apps_answering_each_other_stop_at_the_depth_limit(tmp_path: Path, ping: str,
                                                               pong: str, src: str) -> None:
    """Attack: one visitor message sets two apps answering each other's messages (through
    the messages bridge, or the REST bridge)."""
    home, _recs = _home(tmp_path, {ping: src, pong: src})
    with Host(home) as h:
        visitor, room = _visitor_room(h)
        h.server.visitor_send_message(visitor, room, "hello")
        assert h.wait_idle(30)
        texts = _texts(h, room)
        # Two chains (each app answers the visitor, then the other app), each of one message
        # per depth 1 .. MAX_EVENT_DEPTH + 1; the last one's event reaches no app. Before: both
        # chains ran until each app's 50 sends were spent (101 messages).
        assert len(texts) == 1 + 2 * (MAX_EVENT_DEPTH + 1), texts
        assert sum(app == ping for app, _ in texts) == MAX_EVENT_DEPTH + 1
        assert h.loop_stops == 2
        stops = _loop_stops(home)
        # Once per stopped event (not per app it would have reached), naming who raised it:
        # the chains end with ping's and pong's deepest message, depth MAX_EVENT_DEPTH + 1.
        assert sorted(s["app_id"] for s in stops) == [ping, pong], stops
        assert all(f"at depth {MAX_EVENT_DEPTH + 1} " in s["detail"] and f"({ping}, {pong})"
                   in s["detail"] for s in stops), stops
        # A person's next message is depth 0 again: it reaches both apps, which answer.
        h.server.visitor_send_message(visitor, room, "still there?")
        assert h.wait_idle(30)
        assert len(_texts(h, room)) == 2 * (1 + 2 * (MAX_EVENT_DEPTH + 1))
        assert h.loop_stops == 4


def test_an_app_answering_its_own_messages_stops_at_the_depth_limit(tmp_path: Path) -> None:
    """Attack: one app answers every message, its own too (it loops alone)."""
    home, recs = _home(tmp_path, {"echo": ANSWERS_ALL})
    with Host(home) as h:
        visitor, room = _visitor_room(h)
        h.server.visitor_send_message(visitor, room, "hello")
        assert h.wait_idle(30)
        texts = _texts(h, room)
        # Before: 1 + 50 (its whole quota).
        assert len(texts) == 1 + MAX_EVENT_DEPTH + 1, texts
        assert h.loop_stops == 1
        (stop,) = _loop_stops(home)
        assert stop["app_id"] == "echo" and stop["install_id"] == recs["echo"].install_id
    # Said where the app's author looks, too.
    log = (home.logs_dir / f"{recs['echo'].install_id}.log").read_text()
    assert f"loop stopped: message.sent at depth {MAX_EVENT_DEPTH + 1} " in log, log


def test_a_persons_message_reaches_every_app_and_a_single_reply_happens(tmp_path: Path) -> None:
    """No loop: the bot's one answer is sent, and both messages reach the observer (the answer
    at depth 1). Nothing is stopped."""
    home, recs = _home(tmp_path, {"bot": ANSWERS_VISITORS, "watcher": OBSERVES})
    with Host(home) as h:
        visitor, room = _visitor_room(h)
        h.server.visitor_send_message(visitor, room, "hello")
        assert h.wait_idle(30)
        assert _texts(h, room) == [(None, "hello"), ("bot", "hello, visitor")]
        assert h.loop_stops == 0
    log = (home.logs_dir / f"{recs['watcher'].install_id}.log").read_text()
    assert "SAW None: hello" in log and "SAW bot: hello, visitor" in log, log
    assert _loop_stops(home) == []


def test_the_cause_is_the_writers_own_whichever_thread_emits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events leave in commit order, so one write's events may be emitted by another writer's
    thread. The depth must be the raising write's: an app's write emitted by a person's thread
    keeps its depth (or the loop would restart at 0), and a person's message emitted by the
    app's thread is not charged the app's depth (or a visitor would go unheard). The app's
    close is held after its commit, before its events leave, while a visitor's message commits;
    the app's thread then emits both."""
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "rooms", '''
        schema = 1
        name = "rooms"
        [[rule]]
        id = "rooms"
        effect = "permit"
        apps = ["closer"]
        actions = ["livechat.read", "livechat.write"]
        ''')
    install(home, write_app(tmp_path / "apps", "closer", ["livechat.read", "livechat.write"],
                            [], "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(home, SystemClock(), app_id="closer")
    server = rig.server
    seen: list[tuple[str, int, str | None]] = []

    def heard(name: str, _payload: dict[str, Any]) -> None:
        cause = emitting_cause()
        seen.append((name, cause.depth, cause.app_id))

    server.subscribe(heard)
    v1 = server.save_visitor("visitor-one-token", "One")["id"]
    closing = server.visitor_start_room(v1)["id"]
    v2 = server.save_visitor("visitor-two-token", "Two")["id"]
    talking = server.visitor_start_room(v2)["id"]
    committed, sent = threading.Event(), threading.Event()
    real_count = rig.gate._count

    def held(ok: bool) -> None:  # after the admission's COMMIT, before its events leave
        if threading.current_thread().name == "app-close" and ok and not committed.is_set():
            committed.set()
            sent.wait(5)
        real_count(ok)

    def app_closes() -> None:  # as the runner does around an app's handling of a depth-4 event
        with writing(Cause(5, "closer", rig.install.install_id)):
            rig.gate.handle(rig.session, "livechat.close_room", {"room_id": closing})

    monkeypatch.setattr(rig.gate, "_count", held)
    seen.clear()
    close = threading.Thread(target=app_closes, name="app-close")
    close.start()
    assert committed.wait(5), "the app's close never committed"
    server.visitor_send_message(v2, talking, "after the close")
    sent.set()
    close.join(5)
    assert [s for s in seen if s[0] in ("livechat.room_closed", "message.sent")] == [
        ("livechat.room_closed", 5, "closer"), ("message.sent", 0, None)]
    # A write made where a cause is set (here, directly): its events carry that cause.
    seen.clear()
    with writing(Cause(5, "closer", rig.install.install_id)):
        server.visitor_send_message(v2, talking, "as if caused")
    assert seen == [("message.sent", 5, "closer")]
    rig.close()


# Closes the room a visitor asks it to close: a write the gate makes inside its own transaction
# (`host.gate.onetx`, the loan), whose events leave through another path than a message's.
CLOSES = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        if msg["text"] == "please close":
            ctx.livechat.close_room(msg["room_id"])
'''
CLOSE_POLICY = '''
schema = 1
name = "closing"
[[rule]]
id = "closing"
effect = "permit"
apps = ["closer"]
actions = ["messages.read", "livechat.read", "livechat.write"]
'''


def test_an_apps_lent_write_raises_events_one_deeper(tmp_path: Path) -> None:
    """A write made in the gate's own transaction (a room's close) carries its app's depth
    too: its events are handed over after the gate's COMMIT, through their own place in the
    commit order. Before, they left at depth 0, so a loop through livechat writes (a close, a
    transfer, a take answering one another's events) would have started again at 0 each time."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "closing", CLOSE_POLICY)
    install(home, write_app(tmp_path / "apps", "closer",
                            ["messages.read", "livechat.read", "livechat.write"],
                            ["message.sent"], CLOSES))
    heard: list[tuple[str, int, str | None]] = []
    with Host(home) as h:
        h.server.subscribe(lambda name, _payload: heard.append(
            (name, emitting_cause().depth, emitting_cause().app_id)))
        visitor, room = _visitor_room(h)
        h.server.visitor_send_message(visitor, room, "please close")
        assert h.wait_idle(30)
        assert not h.server.livechat_get_room(SYSTEM, room)["open"]
    assert [e for e in heard if e[0] in ("message.sent", "livechat.room_closed")] == [
        ("message.sent", 0, None), ("livechat.room_closed", 1, "closer")]


# Answers each message of the visitor's and of `hooker`'s.
ANSWERS_HOOKER = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        msg = event["message"]
        if msg["app_id"] == "hooker" or msg["sender"]["type"] == "visitor":
            ctx.messages.send(msg["room_id"], "re: " + msg["text"][:40])
'''
# Its pre-send hook sends a message of its own whenever it judges `answerer`'s: a write made
# while handling no `message.sent` at all, the way round the depth were a hook's job depth 0.
HOOKS_ANSWERER = '''
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        msg = event["message"]
        if msg["app_id"] == "answerer":
            ctx.messages.send(msg["room_id"], "noted: " + msg["text"][:40])
'''
HOOK_POLICY = '''
schema = 1
name = "hooks"
[[rule]]
id = "talk"
effect = "permit"
apps = ["answerer", "hooker"]
actions = ["messages.read", "messages.send"]
[[quota]]
id = "sends"
apps = ["answerer", "hooker"]
action = "messages.send"
limit = 50
window = "1h"
scope = "install"
'''


def test_a_loop_through_a_pre_send_hook_stops_at_the_depth_limit(tmp_path: Path) -> None:
    """Attack: the loop goes through a pre-send hook, whose job is no `message.sent`. The
    hook judges a message being written at depth d, so what it sends is depth d + 1: were its
    job depth 0, every message it sent would be depth 1 and the loop would never deepen."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", HOOK_POLICY)
    install(home, write_app(tmp_path / "apps", "answerer", PERMS, ["message.sent"],
                            ANSWERS_HOOKER))
    install(home, write_app(tmp_path / "apps", "hooker", PERMS, ["message.pre_send"],
                            HOOKS_ANSWERER))
    with Host(home) as h:
        visitor, room = _visitor_room(h)
        h.server.visitor_send_message(visitor, room, "hello")
        assert h.wait_idle(30)
        texts = _texts(h, room)
        # The visitor's message, then one message per depth 1 .. MAX_EVENT_DEPTH + 2: the
        # answerer's at odd depths, the hook's at even ones. Hooks judge every message, so the
        # answerer's last (depth 9, its event stopped) was judged, and the hook's answer to it
        # written (depth 10, its event stopped too). Before: 1 + 50 + 50, both quotas spent.
        assert len(texts) == 1 + MAX_EVENT_DEPTH + 2, texts
        # (the hook answers while the message it judges is being written: its own lands first)
        assert [app for app, _ in texts[1:]] == ["hooker", "answerer"] * 5, texts
        assert h.loop_stops == 2
        stops = sorted((s["app_id"], s["detail"].split(" not delivered")[0])
                       for s in _loop_stops(home))
        assert stops == [("answerer", f"message.sent at depth {MAX_EVENT_DEPTH + 1}"),
                         ("hooker", f"message.sent at depth {MAX_EVENT_DEPTH + 2}")], stops
