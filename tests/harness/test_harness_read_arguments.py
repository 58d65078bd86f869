"""Reads' arguments are refused in the harness as the host's server refuses them.

The harness's fake server took `livechat.list_rooms(open="yes")` (the host: "open must be
true, false or absent") and `users.find_by_field` with a value that is not a string, a key
outside the custom-field alphabet or a value over 1 KiB (the host: the custom-field rules,
`policies.argrules`): an app's test passed where every real call was refused. `messages.list`'s
refusal of a limit out of range now reads as the host's too.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness_helpers import write_app
from harness_vs_gate import both, close_all, rig_and_harness

POLICY = '''
schema = 1
name = "test"
[[rule]]
id = "reads"
effect = "permit"
apps = ["probe"]
actions = ["livechat.read", "users.read", "messages.read"]
'''


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    close_all()


def test_read_arguments_are_refused_as_the_host_refuses_them(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", permissions=("livechat.read", "users.read",
                                                   "messages.read"))
    rig, h = rig_and_harness(tmp_path, app, POLICY)
    steps = [
        ("livechat.list_rooms", {"open": "yes"}),
        ("livechat.list_rooms", {"open": 1}),
        ("livechat.list_rooms", {"open": True}),
        ("users.find_by_field", {"key": "a", "value": 1}),
        ("users.find_by_field", {"key": "a b", "value": "x"}),
        ("users.find_by_field", {"key": "a", "value": "x" * 1025}),
        ("users.find_by_field", {"key": "a", "value": "x"}),
        ("messages.list", {"room_id": "r1", "limit": 0}),
        ("messages.list", {"room_id": "r1", "limit": "5"}),
    ]
    gate, harness = both(rig, h, steps)
    assert harness == gate
    bad, ok = "invalid_argument", "ok"
    assert [code for code, _ in gate] == [bad, bad, ok, bad, bad, bad, ok, bad, bad], gate
