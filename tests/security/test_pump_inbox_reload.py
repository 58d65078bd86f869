"""An event waiting in the event pump's inbox through a narrowing reload is decided again.

`Host.dispatch` decides an event's receivers under the policy in force and hands the fan-out to
the pump, which writes it straight to every idle app's child when its thread takes the batch.
A runner's queue decides a waiting event again as it is taken (`Host.event_allowed`), but the
pump did not: a batch admitted under the old revision and taken after a reload that forbids
what it carries was written to the app anyway. The window is the inbox's wait (a busy pump);
here the batch is handed to the pump exactly as `dispatch` would have done just before the
reload (its receivers and policy object from then).

Real host, real confined child.
"""
from __future__ import annotations

from pathlib import Path

from apphelp import install, write_app, write_policy
from reloadhelp import SECRET, app_log, forbid_reads, permit, reload_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import EventDropped

SRC = '''
from stockade import App

class TestApp(App):
    def on_message_sent(self, ctx, event):
        print("SAW " + event["message"]["text"])
'''


def test_a_batch_in_the_pumps_inbox_through_a_narrowing_reload_is_dropped(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "reads", permit("reads", ["spy"], ["messages.read"]))
    spy = install(home, write_app(tmp_path / "apps", "spy", ["messages.read"], ["message.sent"],
                                  SRC))
    with Host(home, config=HostConfig()) as h:
        assert h.pump is not None
        # What `dispatch` reads before handing the fan-out over: the policy, the receivers.
        admitted_under = h.policy.current()
        runners = h._receivers("message.sent")
        assert [r.app_id for r in runners] == ["spy"]
        (runner,) = runners
        reload_policy(h, home, "nospy", forbid_reads("spy"))  # while the batch waits
        assert h.policy.current() is not admitted_under
        delivery = h.pump.deliver("message.sent", {"message": {"text": SECRET}, "room": None},
                                  10.0, runners, admitted_under)
        (outcome,) = delivery.outcomes(10)
        assert h.wait_idle(10)
        # Before: written to the child under the revision that admitted it.
        assert isinstance(outcome, EventDropped) and "(policy)" in str(outcome), outcome
    assert SECRET not in app_log(home, spy)
    assert runner.status()["dropped_by_reason"] == {"policy": 1}
