"""A handler's result is held to the frame caps on the host, as a bridge call's args are
(`check_json_value`: nesting, items, string length, integer range, finite numbers; DESIGN
rules 4 and 6).

The caps on a result were checked only in the child (`runtime._result_frame`), which is no rule
to an app that escaped its runtime: its Done frame's result reached whoever waited for the event
(a pre-send hook's verdict, whose reason goes back to the message's sender) whatever it held:
NaN, a 200,000-character string, nesting 18 deep, an integer past 64 bits. It is now the
handler's `app_error`, with the words the child's runtime uses.

The child is `sechelp.FAKE_CHILD` behind a real `AppRunner` (`test_hostile_channel.FakeHost`).
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from test_hostile_channel import _runner, hosts

from host.supervise.child import AppFailed
from host.supervise.supervisor import Job
from sandbox.frames import Done
from sandbox.wirecaps import MAX_NESTING, MAX_STRING

__all__ = ["hosts"]  # the fixture, used by name

OVER_CAPS = {
    "nan": "NaN",
    "long-string": '"' + "x" * (MAX_STRING + 1) + '"',
    "deep": "[" * (MAX_NESTING + 2) + "]" * (MAX_NESTING + 2),
    "huge-int": str(2**64),
}


@pytest.mark.parametrize("result", list(OVER_CAPS.values()), ids=list(OVER_CAPS))
def test_a_result_over_the_caps_is_the_handlers_error(
        hosts: list, tmp_path: Path, result: str) -> None:
    _host, runner = _runner(hosts, [["hello"], ["event"], ["done_result", result],
                                    ["event"], ["done_result", '{"fine": [1, "x"]}']], tmp_path)
    with pytest.raises(AppFailed) as info:  # before: the value, handed on as the result
        runner.submit("x.y", {}, 5.0).result(10)
    assert info.value.code == "app_error", info.value
    assert "not plain JSON" in info.value.message, info.value
    # the control: the same child's next result, within the caps, is the result
    assert runner.submit("x.y", {}, 5.0).result(10) == {"fine": [1, "x"]}


def test_a_result_the_event_pump_finishes_is_held_to_the_caps_too(
        hosts: list, tmp_path: Path) -> None:
    """The pump finishes an idle app's event on its own thread (`AppRunner.finish_claimed`)."""
    _host, runner = _runner(hosts, [["hello"], ["sleep", 60]], tmp_path)
    runner.ensure_started()
    end = time.monotonic() + 5
    while runner.try_claim() is None:  # the start's job ends just after its answer
        assert time.monotonic() < end, "the runner never went idle"
        time.sleep(0.005)
    outcome: Future[Any] = Future()
    runner.finish_claimed(Job("x.y", {}, 5.0, outcome),
                          Done(id=7, ok=True, result=[float("nan")]))
    with pytest.raises(AppFailed) as info:  # before: [nan], handed on as the result
        outcome.result(1)
    assert info.value.code == "app_error", info.value
