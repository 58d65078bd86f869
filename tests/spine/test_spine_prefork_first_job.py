"""The pre-fork pool forks the replacement of a child it handed out once that child's first job
is over, not as soon as the child is loaded.

The job a child is started for (an app's first event) is what its start is waited for by; a
replacement forked at the end of the load (a memory cgroup made, the zygote asked, the new
child confining itself) took the host's core from that first event: ~0.5 ms of it on a two-core
machine (docs/BENCH.md). A start that fails reports at once, as before.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from churnhelp import CHURN_POLICY
from pghelp import until

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise import prefork
from host.supervise.supervisor import AppRunner

SRC = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        time.sleep(1.0)
        return "ok"
'''
WAIT_S = 20.0


def test_the_replacement_is_forked_after_the_first_event_not_during_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The refill's cap (a start that never reports) out of the way: only the report counts.
    monkeypatch.setattr(prefork, "REFILL_DEFER_MAX_S", 60.0)
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "spine", CHURN_POLICY)
    rec = install(home, write_app(tmp_path / "apps", "churn", ["livechat.read"],
                                  ["livechat.room_started"], SRC))
    with Host(home, config=HostConfig(watch=False, prefork=1)) as h:
        assert h.spawner is not None and h.spawner.pool is not None
        pool = h.spawner.pool
        h.wait_idle()  # the install's hook ran (it started the host's own runner's child)
        assert pool.wait_ready(WAIT_S)
        made = pool.made
        # A runner with no child yet: its first event starts one from the pool, as an app's
        # first event after an enable does.
        runner = AppRunner(h, rec)
        try:
            done = runner.submit("livechat.room_started", {}, 10.0)
            until(lambda: runner.state == "running", "the app started for its first event",
                  WAIT_S)
            time.sleep(0.4)  # well into its one-second handler
            assert pool.made == made, "a replacement was forked while the first event ran"
            assert done.result(WAIT_S) == "ok"
            until(lambda: pool.made == made + 1, "the replacement forked after the first event",
                  WAIT_S)
        finally:
            runner.stop("test over")
