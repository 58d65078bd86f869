"""A narrowing reload in the middle of a message's chain of pre-send hooks stops the hooks
after it: each is decided under the policy in force as its turn comes. The chain takes up to a
deadline a hook; its receivers were decided once, before the first hook, so an app the reload
forbade `messages.list` was still shown the message (and could change or stop it).

Real host, real confined children: the first hook takes ~1 s, the reload lands meanwhile.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig

SECRET = "my card is 4111-1111-1111-1111"
SLOW = '''
import time
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        time.sleep(1.0)
'''
SPY = '''
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        print("SAW " + event["message"]["text"])
'''
PERMIT = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["a-slow", "b-spy"]
actions = ["messages.read", "messages.send", "livechat.read"]
'''
FORBID = '''
schema = 1
name = "nospy"
[[rule]]
id = "no-reads"
effect = "forbid"
apps = ["b-spy"]
actions = ["messages.list"]
'''
PERMS = ["messages.read", "messages.send", "livechat.read"]


def test_a_reload_during_the_chain_stops_the_later_hooks(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", PERMIT)
    install(home, write_app(tmp_path / "apps", "a-slow", PERMS, ["message.pre_send"], SLOW))
    spy = install(home, write_app(tmp_path / "apps", "b-spy", PERMS, ["message.pre_send"], SPY))
    with Host(home, config=HostConfig(pre_send_deadline_s=5.0)) as h:
        assert [r.app_id for r in h._receivers("message.pre_send")] == ["a-slow", "b-spy"]
        visitor = h.server.save_visitor("visitor-chain", "V")
        room = h.server.visitor_start_room(visitor["id"])["id"]
        sent: list[object] = []
        t = threading.Thread(target=lambda: sent.append(
            h.server.visitor_send_message(visitor["id"], room, SECRET)))
        t.start()
        time.sleep(0.3)  # a-slow's hook is running (it takes ~1 s)
        write_policy(home, "nospy", FORBID)
        h.policy_watch.poll()  # a change is used once it has held still for a poll
        assert h.policy_watch.poll().refused is None
        t.join(30)
        assert sent and sent[0]["text"] == SECRET  # type: ignore[index]
        assert h.wait_idle(10)
    log = home.logs_dir / f"{spy.install_id}.log"
    assert SECRET not in (log.read_text() if log.exists() else "")
