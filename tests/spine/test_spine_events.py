"""Events through real confined children: pre-send semantics (deterministic order, modify,
prevent, a timeout that fails closed or open and is audited), post events that never block the
server action, lifecycle hooks, and audited child deaths."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.server.errors import Prevented
from host.server.principals import SYSTEM
from host.supervise.presend import text_digest
from host.supervise.supervisor import AppRunner

PRE_SEND = '''
import time
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        text = event["message"]["text"]
        if "{mode}" == "tag":
            return {{"text": text + " [a]"}}
        if "{mode}" == "block" and "secret" in text:
            return {{"prevent": True, "reason": "no secrets"}}
        if "{mode}" == "slow" and "slow" in text:
            time.sleep(5)
        return None

    def on_install(self, ctx, event):
        ctx.store.put("installed", event["hook"])
'''

POST_SLOW = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(1.5)
        return "done"
'''

POLICY = '''
schema = 1
name = "events"
[[rule]]
id = "events"
effect = "permit"
apps = ["a-tagger", "b-blocker", "c-slow", "sleeper"]
actions = ["messages.read", "messages.send", "livechat.read", "persistence"]
'''


def _wait_stopped(h: Host, runner: AppRunner, timeout: float = 10) -> None:
    """Until the disabled app's runner has stopped (its hook runs first, after the host's lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and runner.state != "stopped":
        time.sleep(0.05)
    assert h.runners == {} and runner.state == "stopped"


def _world(h: Host) -> tuple[str, str]:
    v = h.server.save_visitor("visitor-events-token", "Eve")
    agent = h.server.users_create(SYSTEM, "agent-e", "E", "user")
    h.server.livechat_add_agent(SYSTEM, agent["id"])
    h.server.set_agent_status(agent["id"], "available")
    room = h.server.visitor_start_room(v["id"])
    return v["id"], room["id"]


def _apps(tmp_path: Path, home: Home) -> None:
    write_policy(home, "events", POLICY)
    for app_id, mode in (("a-tagger", "tag"), ("b-blocker", "block"), ("c-slow", "slow")):
        install(home, write_app(tmp_path / "apps", app_id,
                                ["messages.read", "messages.send", "persistence"],
                                ["message.pre_send"], PRE_SEND.format(mode=mode)))


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
def test_pre_send_order_modify_prevent_and_timeout(tmp_path: Path, mode: str) -> None:
    home = Home(tmp_path / "home").ensure()
    _apps(tmp_path, home)
    config = HostConfig(pre_send_deadline_s=0.5, pre_send_timeout=mode)  # type: ignore[arg-type]
    with Host(home, config=config) as h:
        visitor, room = _world(h)
        sent = h.server.visitor_send_message(visitor, room, "hello")
        assert sent["text"] == "hello [a]"  # a-tagger ran (b and c passed it on unchanged)
        keyed = [text_digest(h.ledger, t) for t in ("hello", "hello [a]")]
        with pytest.raises(Prevented, match="b-blocker: no secrets"):
            h.server.visitor_send_message(visitor, room, "my secret")
        t0 = time.monotonic()
        if mode == "fail_closed":
            with pytest.raises(Prevented, match="c-slow"):
                h.server.visitor_send_message(visitor, room, "slow one")
        else:
            assert h.server.visitor_send_message(visitor, room, "slow one")["text"] == \
                "slow one [a]"
        assert time.monotonic() - t0 < 2.5  # the 1 s class deadline, not the 5 s sleep
        texts = [m["text"] for m in h.server.messages_list(SYSTEM, room)]
        assert "my secret" not in " ".join(texts)
    rows = [json.loads(b) for (b,) in sqlite3.connect(home.host_db).execute(
        "SELECT body FROM audit ORDER BY seq")]
    timeouts = [r for r in rows if r.get("event") == "pre_send_timeout"]
    assert timeouts and timeouts[0]["app_id"] == "c-slow" and mode in timeouts[0]["detail"]
    # What a hook did to someone else's message is in the chain: which app changed which
    # message (keyed digests of the text before and after, never the text: a plain digest is a
    # test for guesses of a short text) or stopped it.
    changed = [r for r in rows if r.get("event") == "pre_send_changed"]
    assert {r["app_id"] for r in changed} == {"a-tagger"}
    assert sent["id"] in changed[0]["detail"]
    before, after = (hashlib.sha256(t.encode()).hexdigest() for t in ("hello", "hello [a]"))
    assert before not in changed[0]["detail"] and after not in changed[0]["detail"]
    assert f"{keyed[0]} -> {keyed[1]}" in changed[0]["detail"]
    assert "hello" not in changed[0]["detail"]
    stopped = [r for r in rows if r.get("event") == "pre_send_prevented"]
    assert [r["app_id"] for r in stopped] == ["b-blocker"]
    assert "no secrets" in stopped[0]["detail"] and "my secret" not in stopped[0]["detail"]


def test_a_pre_send_change_that_cannot_be_recorded_is_not_applied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a hook does to someone else's message goes unrecorded: when the chain refuses
    the record (here the ledger raises, as a full disk would), the message keeps its text."""
    home = Home(tmp_path / "home").ensure()
    _apps(tmp_path, home)
    with Host(home, config=HostConfig(pre_send_deadline_s=2.0)) as h:
        visitor, room = _world(h)
        real = h.ledger.append

        def refusing(record: Any) -> int:
            if record.event == "pre_send_changed":
                raise OSError("database or disk is full")
            return real(record)

        monkeypatch.setattr(h.ledger, "append", refusing)
        assert h.server.visitor_send_message(visitor, room, "plain")["text"] == "plain"
        monkeypatch.setattr(h.ledger, "append", real)
        assert h.server.visitor_send_message(visitor, room, "plain")["text"] == "plain [a]"


def test_lifecycle_install_hook_runs_in_the_child(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    _apps(tmp_path, home)
    with Host(home) as h:
        assert h.wait_idle(10)
        rec = h.installs.by_app("a-tagger")
        assert rec is not None
        assert h.persistence.get(rec.install_id, "installed") == "install"
        assert h.installs.pending_hooks() == []


def test_post_events_never_block_the_server_action(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "events", POLICY)
    install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                            ["livechat.room_started"], POST_SLOW))
    with Host(home) as h:
        next(iter(h.runners.values())).ensure_started()
        v = h.server.save_visitor("visitor-post-token", "Pat")
        t0 = time.monotonic()
        h.server.visitor_start_room(v["id"])
        assert time.monotonic() - t0 < 0.5  # the handler sleeps 1.5 s in its own child
        runner = next(iter(h.runners.values()))
        assert h.wait_idle(10) and runner.events_done == 2  # the install hook + room_started


def test_a_killed_child_is_audited(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "events", POLICY)
    install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                            ["livechat.room_started"], POST_SLOW))
    with Host(home, config=HostConfig(event_deadline_s=0.3)) as h:
        fut = next(iter(h.runners.values())).submit("livechat.room_started", {}, 0.3)
        with pytest.raises(Exception, match="deadline"):
            fut.result(10)
    rows = [json.loads(b) for (b,) in sqlite3.connect(home.host_db).execute(
        "SELECT body FROM audit ORDER BY seq")]
    died = [r for r in rows if r.get("kind") == "supervisor" and r.get("event") == "child_died"]
    assert died and died[0]["app_id"] == "sleeper" and "deadline" in died[0]["detail"]


def test_disable_hook_reaches_the_running_child_before_it_stops(tmp_path: Path) -> None:
    from host.apps.installs import InstallStore

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "events", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                                  ["livechat.room_started"], '''
from stockade import App

class TestApp(App):
    def on_disable(self, ctx, event):
        print("told: " + event["hook"])
'''))
    with Host(home) as h:
        runner = next(iter(h.runners.values()))
        runner.ensure_started()
        with InstallStore(home.host_db) as store:
            store.set_enabled(rec.install_id, False, "operator")
        _wait_stopped(h, runner)
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert "told: disable" in log


PRINTER = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        for i in range(3000):
            print("y" * 700)
            if i % 10 == 0:
                ctx.store.put("k", i)
        return "done"
'''


def test_an_app_printing_past_its_cap_between_calls_is_not_taken_for_a_flood(
        tmp_path: Path) -> None:
    """The control for the log flood kill (`logcap.LOG_FLOOD_*`, attacked in
    test_protocol_attacks.py): a real app that prints twice its runtime's cap, with bridge calls
    in between (each flushes a Log frame), finishes its event; its output is cut, not killed."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "events", POLICY.replace('"sleeper"]', '"sleeper", "printer"]'))
    install(home, write_app(tmp_path / "apps", "printer", ["livechat.read", "persistence"],
                            ["livechat.room_started"], PRINTER))
    with Host(home, config=HostConfig(watch=False)) as h:
        runner = next(iter(h.runners.values()))
        assert runner.submit("livechat.room_started", {}, 30).result(40) == "done"
        assert runner.restarts == 0


SLOW_LOGGER = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(0.5)
        print("handled " + str(event["n"]))

    def on_disable(self, ctx, event):
        print("told: " + event["hook"])
'''


def test_a_disabled_apps_backlog_is_dropped_not_delivered_before_its_hook(
        tmp_path: Path) -> None:
    """Events queued for an app when the operator disables it are dropped (counted, audited):
    before, the disable hook waited behind the backlog and the disabled app was handed every
    queued event, with its rooms' and visitors' data, for up to the hook's deadline."""
    from host.apps.installs import InstallStore
    from host.supervise.supervisor import EventDropped

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "events", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                                  ["livechat.room_started"], SLOW_LOGGER))
    with Host(home) as h:
        runner = next(iter(h.runners.values()))
        runner.ensure_started()
        futures = [runner.submit("livechat.room_started", {"n": i}, 10) for i in range(10)]
        time.sleep(0.1)  # the first is running
        with InstallStore(home.host_db) as store:
            store.set_enabled(rec.install_id, False, "operator")
        _wait_stopped(h, runner)
        assert runner.status()["dropped_by_reason"].get("disabled", 0) >= 5
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert "told: disable" in log
    # the one running, and what started before the watcher saw the change (a busy machine)
    assert log.count("handled ") <= 4, log
    dropped = 0
    for f in futures:
        try:
            f.result(0)
        except EventDropped:
            dropped += 1
        except Exception:  # the one in flight ends with its child (AppFailed, ChildDied)
            pass
    assert dropped >= 5


SLOW_HOOK = '''
import time
from stockade import App

class TestApp(App):
    def on_disable(self, ctx, event):
        time.sleep(3)
'''


def test_a_slow_disable_hook_holds_up_no_other_apps_event(tmp_path: Path) -> None:
    """The disable hook ran while the host's install lock was held, and every event dispatch
    (each server action's, a REST write's) waits for that lock: one app's slow hook stalled
    every other app's events, up to the hook's deadline (before: ~3 s here)."""
    from host.apps.installs import InstallStore

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "events", POLICY)
    slow = install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                                   ["livechat.room_started"], SLOW_HOOK))
    install(home, write_app(tmp_path / "apps", "c-slow", ["livechat.read"],
                            ["livechat.room_started"], POST_SLOW.replace("1.5", "0")))
    with Host(home) as h:
        for runner in h.runners.values():
            runner.ensure_started()
        with InstallStore(home.host_db) as store:
            store.set_enabled(slow.install_id, False, "operator")
        time.sleep(0.6)  # the watcher has seen it and is delivering the hook
        t0 = time.monotonic()
        delivery = h.dispatch("livechat.room_started", {})
        dispatched = time.monotonic() - t0
        assert delivery.wait(10) and delivery.results() == ["done"]
        assert dispatched < 1.0, f"dispatch waited {dispatched:.1f} s for another app's hook"
