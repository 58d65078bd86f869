"""One app's slow disable (or uninstall) hook never holds up the serving host's watcher.

The watcher (`host.rounds`) makes the running set match the install store: it stops a disabled
app, restarts one whose token was revoked or expires, or whose key was retired. Before, it
delivered a disabled app's own hook and waited for it (up to the event deadline, and 5 s more)
in its own thread: an app whose `on_disable` used its whole deadline held every change that
came after, so a second app the operator disabled meanwhile went on receiving events (rooms,
messages, visitors' data) for that long, and no token was renewed.
"""
from __future__ import annotations

import time
from pathlib import Path

from apphelp import install, write_app

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host, HostConfig

SLOW_HOOK = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"

    def on_disable(self, ctx, event):
        time.sleep(60)
'''
PLAIN = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''
DEADLINE_S = 6.0


def test_a_disable_after_a_slow_hooks_is_applied_at_once(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    slow = install(home, write_app(tmp_path / "apps", "sleeper", ["livechat.read"],
                                   ["livechat.room_started"], SLOW_HOOK))
    other = install(home, write_app(tmp_path / "apps", "other", ["livechat.read"],
                                    ["livechat.room_started"], PLAIN))
    with Host(home, config=HostConfig(event_deadline_s=DEADLINE_S)) as host:
        for runner in host.runners.values():
            runner.ensure_started()
        child = host.runners[other.install_id].child
        assert child is not None
        with InstallStore(home.host_db) as store:
            store.set_enabled(slow.install_id, False, "operator")
        deadline = time.monotonic() + 5
        while slow.install_id in host.runners:  # the watcher has taken the change
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # and is delivering the sleeper's hook
        with InstallStore(home.host_db) as store:
            store.set_enabled(other.install_id, False, "operator")
        t0 = time.monotonic()
        while not child.dead:
            assert time.monotonic() - t0 < DEADLINE_S / 2, (
                "the second disable waited for the first app's hook")
            time.sleep(0.02)
        assert other.install_id not in host.runners
