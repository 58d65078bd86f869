"""A pre-send hook waiting for its app (busy with an event: a hook waits up to
`MAX_START_WAIT_S` to start) is decided again as the runner takes it, as a queued event is: a
reload that forbade the app `messages.list` meanwhile stops it. Before, the hook was decided
once, as it was queued, and ran under the revision that had been replaced: the app was shown
the visitor's message (and could change or stop it) after the operator forbade it the read.

Real host, real confined children: the app's event takes ~0.8 s, the message and the reload
land meanwhile.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig

SECRET = "my card is 4111-1111-1111-1111"
SPY = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(0.8)

    def on_message_pre_send(self, ctx, event):
        print("SAW " + event["message"]["text"])
'''
PERMIT = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["b-spy"]
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


def test_a_queued_hook_is_decided_again_when_it_is_taken(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", PERMIT)
    spy = install(home, write_app(tmp_path / "apps", "b-spy", PERMS,
                                  ["livechat.room_started", "message.pre_send"], SPY))
    with Host(home, config=HostConfig(pre_send_deadline_s=5.0)) as h:
        runner = next(iter(h.runners.values()))
        runner.ensure_started()
        visitor = h.server.save_visitor("visitor-queued", "V")
        room = h.server.visitor_start_room(visitor["id"])["id"]  # its event keeps the app busy
        deadline = time.monotonic() + 5
        while runner.idle() and time.monotonic() < deadline:
            time.sleep(0.005)
        sent: list[object] = []
        t = threading.Thread(target=lambda: sent.append(
            h.server.visitor_send_message(visitor["id"], room, SECRET)))
        t.start()
        while len(runner._urgent) == 0 and time.monotonic() < deadline:  # the hook waits
            time.sleep(0.005)
        assert len(runner._urgent) == 1
        write_policy(home, "nospy", FORBID)
        h.policy_watch.poll()  # a change is used once it has held still for a poll
        assert h.policy_watch.poll().refused is None
        t.join(30)
        assert h.wait_idle(10)
    assert sent and sent[0]["text"] == SECRET  # type: ignore[index]
    log = home.logs_dir / f"{spy.install_id}.log"
    assert SECRET not in (log.read_text() if log.exists() else "")
