"""A pre-send hook waiting for its app (busy with an event: a hook waits up to
`MAX_START_WAIT_S` to start) is decided again as the runner takes it, as a queued event is: a
reload that forbade the app `messages.list` meanwhile stops it. Before, the hook was decided
once, as it was queued, and ran under the revision that had been replaced: the app was shown
the visitor's message (and could change or stop it) after the operator forbade it the read.

Real host, real confined children: the app's event takes ~0.8 s, the message and the reload
land meanwhile.
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

SPY = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(0.8)

    def on_message_pre_send(self, ctx, event):
        print("SAW " + event["message"]["text"])
'''


def test_a_queued_hook_is_decided_again_when_it_is_taken(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", permit("hooks", ["b-spy"]))
    spy = install(home, write_app(tmp_path / "apps", "b-spy", HOOK_PERMS,
                                  ["livechat.room_started", "message.pre_send"], SPY))
    with Host(home, config=HostConfig(pre_send_deadline_s=5.0)) as h:
        runner = next(iter(h.runners.values()))
        runner.ensure_started()
        visitor = h.server.save_visitor("visitor-queued", "V")
        room = h.server.visitor_start_room(visitor["id"])["id"]  # its event keeps the app busy
        deadline = time.monotonic() + 5
        while runner.idle() and time.monotonic() < deadline:
            time.sleep(0.005)
        t, sent = send_meanwhile(h, visitor["id"], room)
        while len(runner._urgent) == 0 and time.monotonic() < deadline:  # the hook waits
            time.sleep(0.005)
        assert len(runner._urgent) == 1
        reload_policy(h, home, "nospy", forbid_reads("b-spy"))
        t.join(30)
        assert h.wait_idle(10)
    assert sent and sent[0]["text"] == SECRET  # type: ignore[index]
    assert SECRET not in app_log(home, spy)
