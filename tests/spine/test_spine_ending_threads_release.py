"""The threads that end disabled apps give their store connections back (DESIGN rule 13).

The watcher (a disable or uninstall made by the CLI or the console) ends each app on a thread
of its own (`LifeHooks.end(wait=False)`), which delivers the app's final hook and stops it,
through the install, token and audit stores. Each store keeps every connection it opened until
it closes (`Store._opened`), and only a thread that hands its connection back
(`release_thread`, as runner threads do) lets the next thread use it: these threads did not,
so every disable left two or three SQLite connections (two descriptors each, host.db and its
WAL) open for the life of the host: 83 descriptors grew to 483 over 100 disable/enable cycles,
and a host churning apps long enough ran out of descriptors."""
from __future__ import annotations

from pathlib import Path

from apphelp import install, write_app, write_policy
from churnhelp import CHURN_POLICY, after_an_upkeep_round, host_db_fds

from host.home import Home
from host.runtime import Host, HostConfig

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"

    def on_app_disabled(self, ctx, event):
        return "bye"
'''
WARM, CYCLES = 10, 40


def test_disables_seen_by_the_watcher_leave_no_connection_open(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], SRC))
    with Host(home, config=HostConfig(watch=False)) as h:
        def cycle() -> None:
            runner = h.runners[rec.install_id]
            assert runner.submit("livechat.room_started", {}, 5.0).result(20) == "ok"
            h.installs.set_enabled(rec.install_id, False)
            h.sync_installs(wait_hooks=False)  # as the watcher does: the ending on a thread
            h.hooks.join(10)
            h.installs.set_enabled(rec.install_id, True)
            h.sync_installs(wait_hooks=False)

        for _ in range(WARM):  # what is made once (threads, caches) is made
            cycle()
        after_an_upkeep_round(h)  # its thread's connections are open
        before = host_db_fds(home)
        for _ in range(CYCLES):
            cycle()
        grown = host_db_fds(home) - before
    # Before: ~5 descriptors a cycle (200 after 40 cycles).
    assert grown <= 8, f"{grown} host.db descriptors more after {CYCLES} disable/enable cycles"
