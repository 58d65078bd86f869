"""App code that runs after its handler ended cannot slip a bridge call in between events.

The host reads a Call only within an event's conversation. A failed handler's exception used
to live until after the child had sent its Done, and freeing it then closed a generator the
handler had started, whose `finally` called a bridge: the Call went out between events, the
host read it as the *next* event's first call (deciding, performing and auditing it there),
and the child, waiting for a Reply, got that Event and died (exit 64), failing it.

Now the exception is freed inside the event (the generator's call is the event's own), and a
bridge call made after the handler returned is refused in the child (`_Channel.call`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig
from sandbox import errors, runtime

LATE = '''
from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        if event["phase"] == 1:
            def saver():
                try:
                    yield 1
                finally:
                    ctx.store.put("late", {"saved": True})
            pending = saver()
            next(pending)
            raise ValueError("the handler fails with a generator open")
        return ctx.store.get("late")
'''


def test_a_generators_finally_calls_within_its_event_and_the_next_event_runs(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "late", ["persistence", "livechat.read"],
                            ["livechat.room_started"], LATE))
    with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
        (runner,) = host.runners.values()
        with pytest.raises(Exception, match="generator open"):
            runner.submit("livechat.room_started", {"phase": 1}, 10.0).result(30)
        # before: the put went out after the Done, this event got it as its own first call,
        # and the child died waiting for that call's Reply (ChildDied, exit 64)
        assert runner.submit("livechat.room_started", {"phase": 2},
                             10.0).result(30) == {"saved": True}
        assert runner.status()["restarts"] == 0, runner.status()


class _Sent(runtime._Channel):
    """The child's channel with its descriptors left alone: records what it would send."""

    def __init__(self) -> None:  # no FrameReader on the real channel descriptor
        self.in_event = False
        self.sent: list[Any] = []
        self.next_id = 1

    def send(self, frame: Any) -> None:
        self.sent.append(frame)


def test_a_bridge_call_outside_a_handler_is_refused_in_the_child() -> None:
    """Garbage freed between events (a generator in a reference cycle, collected later)
    finds its calls refused, nothing sent: the host would read it as the next event's."""
    chan = _Sent()
    with pytest.raises(errors.InvalidArgument, match="only while a handler runs"):
        chan.call("persistence.put", {"key": "late", "value": 1})
    assert chan.sent == []
