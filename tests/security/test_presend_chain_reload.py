"""A narrowing reload in the middle of a message's chain of pre-send hooks stops the hooks
after it: each is decided under the policy in force as its turn comes. The chain takes up to a
deadline a hook; its receivers were decided once, before the first hook, so an app the reload
forbade `messages.list` was still shown the message (and could change or stop it).

Real host, real confined children: the first hook takes ~1 s, the reload lands meanwhile.
"""
from __future__ import annotations

import time
from pathlib import Path

from apphelp import install, write_app, write_policy
from reloadhelp import (
    HOOK_PERMS,
    SECRET,
    app_log,
    forbid_reads,
    permit,
    reload_policy,
    send_meanwhile,
)

from host.home import Home
from host.runtime import Host, HostConfig

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


def test_a_reload_during_the_chain_stops_the_later_hooks(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", permit("hooks", ["a-slow", "b-spy"]))
    install(home, write_app(tmp_path / "apps", "a-slow", HOOK_PERMS, ["message.pre_send"], SLOW))
    spy = install(home, write_app(tmp_path / "apps", "b-spy", HOOK_PERMS, ["message.pre_send"],
                                  SPY))
    with Host(home, config=HostConfig(pre_send_deadline_s=5.0)) as h:
        assert [r.app_id for r in h._receivers("message.pre_send")] == ["a-slow", "b-spy"]
        visitor = h.server.save_visitor("visitor-chain", "V")
        room = h.server.visitor_start_room(visitor["id"])["id"]
        t, sent = send_meanwhile(h, visitor["id"], room)
        time.sleep(0.3)  # a-slow's hook is running (it takes ~1 s)
        reload_policy(h, home, "nospy", forbid_reads("b-spy"))
        t.join(30)
        assert sent and sent[0]["text"] == SECRET  # type: ignore[index]
        assert h.wait_idle(10)
    assert SECRET not in app_log(home, spy)
