"""A failed event leaves nothing behind for the cyclic collector (issue 26's soak): the failure
handed to the event's waiter carries no traceback, whose frames would hold the job, its outcome
and so the failure itself, a cycle per failed event that only a full collection frees."""
from __future__ import annotations

import gc
from pathlib import Path

from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.child import AppFailed

FAILING = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        raise ValueError("this handler always fails")
'''

POLICY = '''
schema = 1
name = "failing"
[[rule]]
id = "failing-read"
effect = "permit"
apps = ["failing"]
actions = ["livechat.read"]
'''


def test_failed_events_are_freed_without_the_cyclic_collector(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "failing", POLICY)
    install(home, write_app(tmp_path / "apps", "failing", ["livechat.read"],
                            ["livechat.room_started"], FAILING))
    with Host(home, config=HostConfig(watch=False, tune_gc=False)) as host:
        first = host.dispatch("livechat.room_started", {"n": -1})
        [failure] = first.outcomes(30)
        assert isinstance(failure, AppFailed) and "always fails" in str(failure)
        assert failure.__traceback__ is None
        del first, failure
        gc.collect()
        gc.disable()
        try:
            for i in range(20):
                delivery = host.dispatch("livechat.room_started", {"n": i})
                assert delivery.wait(30)
                del delivery
            alive = sum(1 for o in gc.get_objects() if isinstance(o, AppFailed))
        finally:
            gc.enable()
        assert alive <= 1, f"{alive} failed events' failures still alive"
