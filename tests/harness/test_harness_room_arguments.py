"""Room actions' arguments are refused in the harness as the host's server refuses them.

The harness's fake server closed a room with a 5,000-character comment or a comment that is
not a string, and took an agent display name or relay alias holding a line break or a tab and an
avatar URL holding a space: the host refuses each (`comment must be 0..1024 characters`, the
display-name rules, `an http(s) URL without spaces`), so an app's test passed where every real
call was refused. The rules are one copy now (`policies.argrules`), applied by both.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness_helpers import write_app
from harness_vs_gate import Step, close_all, rig_and_harness, run_steps

POLICY = '''
schema = 1
name = "test"
[[rule]]
id = "rooms"
effect = "permit"
apps = ["probe"]
actions = ["livechat.read", "livechat.write", "livechat.agents", "livechat.agent-display",
           "messages.send"]
'''
PERMS = ("livechat.read", "livechat.write", "livechat.agents", "livechat.agent-display",
         "messages.send")


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    close_all()


def _agent(app_user: str) -> list[Step]:
    """The app's user made an available agent first: the room started next is routed to it."""
    return [("livechat.add_agent", {"user_id": app_user}),
            ("livechat.set_agent_status", {"user_id": app_user, "status": "available"})]


def _steps(room: str) -> list[Step]:
    def display(name: str, avatar: str | None = None) -> Step:
        args: dict[str, Any] = {"room_id": room, "name": name}
        return ("livechat.set_agent_display", args if avatar is None
                else {**args, "avatar_url": avatar})

    def relay(alias: str, avatar: str | None = None) -> Step:
        args: dict[str, Any] = {"room_id": room, "text": "hi", "alias": alias}
        return ("livechat.relay_message", args if avatar is None
                else {**args, "avatar_url": avatar})

    return [
        display("Dana\n(Acme)"), display("Dana\t"), display(""), display("x" * 129),
        display("Dana", "https://x.example/a b.png"), display("Dana", "javascript:x"),
        display("Dana", "https://x.example/" + "a" * 1100),
        relay("Dana\r"), relay("Dana", "https://x.example/a\tb.png"),
        display("Dana", "https://x.example/a.png"), relay("Dana"),
        ("livechat.close_room", {"room_id": room, "comment": "x" * 1025}),
        ("livechat.close_room", {"room_id": room, "comment": 5}),
        ("livechat.close_room", {"room_id": room, "comment": ""}),
    ]


def test_room_arguments_are_refused_as_the_host_refuses_them(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", permissions=PERMS)
    rig, h = rig_and_harness(tmp_path, app, POLICY)
    server = rig.server._server
    app_user = rig.installs.get(rig.session.install_id).app_user_id
    gate_call = lambda a, args: rig.gate.handle(rig.session, a, args)  # noqa: E731
    assert run_steps(gate_call, _agent(app_user)) == run_steps(h.call, _agent(h.app_user["id"]))
    visitor = server.save_visitor("visitor-token-1", "Ann")
    room = server.visitor_start_room(visitor["id"])["id"]
    gate = run_steps(gate_call, _steps(room))
    h_room = h.start_room(h.add_visitor(name="Ann")["id"])["room"]["id"]
    harness = run_steps(h.call, _steps(h_room))
    # The same codes and words, but for ids, which each server mints its own way.
    assert [(c, m.replace(room, "ROOM") if isinstance(m, str) else m) for c, m in gate] == \
        [(c, m.replace(h_room, "ROOM") if isinstance(m, str) else m) for c, m in harness]
    codes = [c for c, _ in gate]
    assert codes[:9] == ["invalid_argument"] * 9, gate
    assert codes[9:11] == ["ok", "ok"] and codes[11:13] == ["invalid_argument"] * 2, gate
    assert codes[13] == "ok", gate
