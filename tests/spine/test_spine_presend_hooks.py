"""Pre-send hooks through the real host (`host/supervise/presend.py`): a hook goes ahead of its
app's queued events, its deadline counts from its start, one that could not start in time is
never run later, and what it is shown is the documented `Message`, nothing more."""
from __future__ import annotations

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
from host.server.shapes import Message
from host.supervise import presend

BUSY_JUDGE = '''
import time
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        print("HOOK saw " + event["message"]["text"])
        return {{"text": event["message"]["text"] + " [checked]"}}

    def on_livechat_room_started(self, ctx, event):
        time.sleep({sleep})   # a CRM call: well inside the event deadline
'''

POLICY = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["judge", "a-sender", "b-hook"]
actions = ["messages.read", "messages.send", "livechat.read"]
'''


def _judge(tmp_path: Path, home: Home, sleep: float) -> None:
    write_policy(home, "hooks", POLICY)
    install(home, write_app(tmp_path / "apps", "judge",
                            ["messages.read", "messages.send", "livechat.read"],
                            ["message.pre_send", "livechat.room_started"],
                            BUSY_JUDGE.format(sleep=sleep)))


def _rooms(h: Host, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        v = h.server.save_visitor(f"visitor-hooks-{i}", f"V{i}")
        out.append((v["id"], h.server.visitor_start_room(v["id"])["id"]))
    return out


def _audit(home: Home) -> list[dict[str, Any]]:
    return [json.loads(b) for (b,) in sqlite3.connect(home.host_db).execute(
        "SELECT body FROM audit ORDER BY seq")]


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
def test_a_hook_goes_ahead_of_its_apps_queued_events(tmp_path: Path, mode: str) -> None:
    """Four room starts give the judge ~2.4 s of work; a message waits only for the one it is
    running. Fails before: the hook queued behind all four, past its 1 s deadline (counted
    from the submit), so the message was refused (fail_closed) or stored unjudged (fail_open),
    and the audit blamed the hook for a timeout."""
    home = Home(tmp_path / "home").ensure()
    _judge(tmp_path, home, 0.6)
    with Host(home, config=HostConfig(pre_send_timeout=mode)) as h:  # type: ignore[arg-type]
        rooms = _rooms(h, 4)
        time.sleep(0.1)  # the first start is running, three are queued
        t0 = time.monotonic()
        sent = h.server.visitor_send_message(*rooms[0], "hello")
        waited = time.monotonic() - t0
        assert sent["text"] == "hello [checked]"
        assert waited < 1.2, waited  # one event's remainder, not the backlog's 2.4 s
        assert h.wait_idle(10)
    assert not [r for r in _audit(home) if r.get("event") == "pre_send_timeout"]


def test_a_hook_that_could_not_start_in_time_never_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge is busy past the start wait: the message is refused (fail closed) saying the
    app was busy, and the hook's job is dropped, not run later on a message already decided.
    Fails before: the hook ran 1.4 s later on the refused message."""
    monkeypatch.setattr(presend, "MAX_START_WAIT_S", 0.3, raising=False)
    home = Home(tmp_path / "home").ensure()
    _judge(tmp_path, home, 1.5)
    with Host(home, config=HostConfig(pre_send_deadline_s=0.5)) as h:
        (visitor, room), = _rooms(h, 1)
        time.sleep(0.1)  # its room start is running
        with pytest.raises(Prevented, match="judge"):
            h.server.visitor_send_message(visitor, room, "too early")
        assert h.wait_idle(10)
        runner = next(iter(h.runners.values()))
        assert runner.status()["dropped_by_reason"] == {"abandoned": 1}
        assert h.server.visitor_send_message(visitor, room, "later")["text"] == \
            "later [checked]"
        rec = runner.install_id
    log = (home.logs_dir / f"{rec}.log").read_text()
    assert "HOOK saw too early" not in log and "HOOK saw later" in log
    timeouts = [r for r in _audit(home) if r.get("event") == "pre_send_timeout"]
    assert len(timeouts) == 1 and "did not start" in timeouts[0]["detail"]


SENDER = '''
from stockade import App
class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        ctx.messages.send(event["room"]["id"], "hello from sender")
'''
SHOWN = '''
from stockade import App
class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        print("KEYS " + ",".join(sorted(event["message"])) + " ALL " + str(event))
'''


def test_a_hook_is_shown_the_documented_message_and_no_other_apps_install(
        tmp_path: Path) -> None:
    """Fails before: the hook got the server's internal dict, with `room` and `origin` (the
    sending app's install id) beside the documented fields."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", POLICY)
    sender = install(home, write_app(tmp_path / "apps", "a-sender",
                                     ["livechat.read", "messages.send"],
                                     ["livechat.room_started"], SENDER))
    hook = install(home, write_app(tmp_path / "apps", "b-hook", ["messages.read", "messages.send"],
                                   ["message.pre_send"], SHOWN))
    with Host(home, config=HostConfig()) as h:
        agent = h.server.users_create(SYSTEM, "agent-x", "X", "user")
        h.server.livechat_add_agent(SYSTEM, agent["id"])
        h.server.set_agent_status(agent["id"], "available")
        _rooms(h, 1)
        assert h.wait_idle(10)
    log = (home.logs_dir / f"{hook.install_id}.log").read_text()
    assert "hello from sender" in log
    assert f"KEYS {','.join(sorted(Message.__annotations__))} ALL" in log
    assert sender.install_id not in log
