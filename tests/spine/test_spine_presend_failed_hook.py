"""A pre-send hook that raised is said to have failed, not to have been slow.

An author's first `on_message_pre_send` with a bug (`event["message"]["txt"]`) raised at once;
the host (fail closed) refused the message with "the pre-send hook of judge did not answer in
time", so the author looked for slowness in a hook that had answered within milliseconds. The
refusal now names what happened (failed; its error in `stockade app logs`), without the app's
own text, which the sender of the message has no business reading.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host, HostConfig
from host.server.errors import Prevented

BROKEN = '''
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        return {"text": event["message"]["txt"] + " secret-of-the-app"}
'''
POLICY = '''
schema = 1
name = "hooks"
[[rule]]
id = "hooks"
effect = "permit"
apps = ["judge"]
actions = ["messages.read", "messages.send"]
'''


def test_a_hook_that_raised_is_named_as_failed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", POLICY)
    install(home, write_app(tmp_path / "apps", "judge", ["messages.read", "messages.send"],
                            ["message.pre_send"], BROKEN))
    with Host(home, config=HostConfig()) as h:
        v = h.server.save_visitor("visitor-hooks-1", "V")
        room = h.server.visitor_start_room(v["id"])["id"]
        with pytest.raises(Prevented) as caught:
            h.server.visitor_send_message(v["id"], room, "hello")
    said = str(caught.value)
    assert "in time" not in said, said
    assert "pre-send hook of judge failed" in said and "stockade app logs judge" in said, said
    assert "txt" not in said and "secret" not in said  # the app's error stays in its log
