"""A frame from a child is refused on its bytes when it holds more JSON structure than a child's
runtime ever sends, before the host decodes a value of it (DESIGN rules 5 and 13).

The caps on a Call's args and a handler's result (`check_json_value`: `MAX_VALUES` values) were
checked after the frame was decoded, and a handler's result not at all on the host. Decoding is
where the cost was: a 1 MiB frame of `[],[],...` is 333,000 Python lists, which cost a real host
~110 ms of its interpreter lock and ~25 MiB each, the garbage collector walking them all. An app
that escaped its runtime answered every event with such a Done (nothing charges a Done; on the
event pump's thread, the one that serves every app): another app's bridge calls, 417-1,005 a
second beside the same flood of events answered with `null`, fell to 43-99 a second (two cores;
through the pump and through the runner). `frames.check_child_structure` counts brackets and separators outside
the strings at C speed; past what `MAX_VALUES` values can be written with, the channel is
dropped as for any frame the protocol refuses.

The child here is `sechelp.FAKE_CHILD` (unrestricted Python speaking the protocol); the host
side is the real `Child`.
"""
from __future__ import annotations

import select
import time
from typing import Any

import pytest
from sechelp import fake, fakes_fixture  # noqa: F401  (the fixture)

import host.supervise.child as child_module
from host.supervise.child import Child, ChildDied
from sandbox import frames
from sandbox.protocol import Event
from sandbox.runtime import _result_frame
from sandbox.wire import encode
from sandbox.wirecaps import MAX_FRAME_BYTES, MAX_ITEMS, MAX_STRING, MAX_VALUES, check_json_value

# Past the values cap many times over, as one 1 MiB frame holds it.
WIDE = 333_000


def _fake(fakes: list[Child], steps: list[Any]) -> Child:
    child = fake(fakes, steps)
    child.handshake("tok", lambda _t: None, degraded=False)
    return child


def _no_log(_text: str, _truncated: bool) -> None:
    pass


def _decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every body the host's `Child` hands to the decoder from now on."""
    sizes: list[int] = []
    real = frames.decode_child

    def decode_child(body: bytes) -> frames.ChildFrame:
        sizes.append(len(body))
        return real(body)

    monkeypatch.setattr(child_module.frames, "decode_child", decode_child)
    return sizes


def test_a_done_wider_than_a_runtime_sends_drops_the_child_undecoded(
        fakes: list[Child], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the host decoded the 333,000 lists and returned them as the handler's result."""
    child = _fake(fakes, [["hello"], ["event"], ["wide", "done", WIDE], ["sleep", 60]])
    sizes = _decoded_sizes(monkeypatch)
    with pytest.raises(ChildDied) as info:
        child.deliver("x.y", {}, 5.0, lambda *_a: None, _no_log)
    assert info.value.code == "protocol" and "values" in info.value.reason, info.value
    assert all(size < 100_000 for size in sizes), sizes


def test_a_call_wider_than_a_runtime_sends_drops_the_child_undecoded(
        fakes: list[Child], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: decoded, then refused by the values cap as `invalid_argument` (the child lived on
    to send the next one; here it waited, and the event ended at its deadline)."""
    child = _fake(fakes, [["hello"], ["event"], ["wide", "call", WIDE], ["sleep", 60]])
    sizes = _decoded_sizes(monkeypatch)

    def on_call(_c: Child, _action: str, _args: dict[str, Any]) -> Any:
        raise AssertionError("the call reached the gate")

    with pytest.raises(ChildDied) as info:
        child.deliver("x.y", {}, 2.0, on_call, _no_log)
    assert info.value.code == "protocol" and "values" in info.value.reason, info.value
    assert all(size < 100_000 for size in sizes), sizes


def test_the_event_pump_hands_such_a_done_to_the_runner_undecoded(
        fakes: list[Child], monkeypatch: pytest.MonkeyPatch) -> None:
    """The pump's thread serves every app: it hands the frame over (the runner then drops the
    child, as above) instead of decoding it. Before: it decoded it and took it as the Done."""
    child = _fake(fakes, [["hello"], ["event"], ["wide", "done", WIDE], ["sleep", 60]])
    sizes = _decoded_sizes(monkeypatch)
    child.begin_event(encode(Event(id=7, name="x.y", payload={}).model_dump_json().encode()))
    poller = select.poll()
    poller.register(child.from_child, select.POLLIN)
    end = time.monotonic() + 10
    done, other = None, None
    while done is None and other is None:
        assert time.monotonic() < end, "the frame never arrived"
        poller.poll(1000)
        done, other = child.poll_done(7)
    assert done is None and other is not None and len(other) > 900_000
    assert all(size < 100_000 for size in sizes), sizes


# ---- the limits against what a runtime child sends -------------------------------------


def _rows(unit: Any, values: int) -> dict[str, Any]:
    """Args of exactly `values` values: {"a": [[unit, ...], ...]} (each unit one value), every
    list within MAX_ITEMS."""
    left = values - 2  # the args object and its list
    rows: list[list[Any]] = []
    while left > 0:
        n = min(MAX_ITEMS - 1, left - 1)
        rows.append([unit] * n)
        left -= n + 1
    return {"a": rows}


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_count(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_count(v) for v in value)
    return 1


def _dicts(values: int) -> dict[str, Any]:
    """Args of exactly `values` values, objects of empty objects (two separators a value)."""
    left = values - 2
    rows: dict[str, Any] = {}
    while left > 0:
        n = min(MAX_ITEMS - 1, left - 1)
        rows[f"r{len(rows)}"] = {f"k{i}": {} for i in range(n)}
        left -= n + 1
    return {"a": rows}


_PUNCT = ('\\"[{,:' * MAX_STRING)[:MAX_STRING]  # every character the count looks at


@pytest.mark.parametrize("args", [
    _rows([], MAX_VALUES), _dicts(MAX_VALUES), _rows(0, MAX_VALUES),
    {f"s{i}": _PUNCT for i in range(11)},
], ids=["empty-lists", "empty-objects", "numbers", "strings-of-punctuation"])
def test_the_widest_frames_a_runtime_child_sends_pass(args: dict[str, Any]) -> None:
    """What the child's runtime sends, at the values cap, through its own encoders: a Call
    (`_Channel.call`) and a Done (`runtime._result_frame`). The control for the tests above."""
    check_json_value(args)  # the child's own check lets it through
    assert _count(args) <= MAX_VALUES
    for body in (frames.encode(frames.Call(id=1, action="users.get", args=args)),
                 _result_frame(7, args)):
        assert b'"ok":false' not in body[:40] and len(body) <= MAX_FRAME_BYTES
        frames.check_child_structure(body)
        frames.decode_child(body)


def test_a_hello_with_every_note_full_of_punctuation_passes() -> None:
    layers = dict.fromkeys(("seccomp", "landlock", "no_new_privs", "netns", "ipcns", "pidns",
                            "rlimits", "pdeathsig", "fds_closed", "empty_env", "uid_dropped",
                            "empty_root"),
                           True)
    hello = frames.ChildHello(v=1, token="t" * 4096, layers=frames.Layers(
        **layers, notes=[(',:[{"' * 60)[:256]] * 16))
    frames.check_child_structure(frames.encode(hello))


@pytest.mark.parametrize("body", [
    b'{"t":"done","id":1,"ok":true,"result":[' + b",".join([b"[]"] * WIDE) + b"]}",
    b'{"t":"done","id":1,"ok":true,"result":[' + b",".join([b'""'] * WIDE) + b"]}",
    b'{"t":"call","id":1,"action":"a","args":{"a":[' + b",".join([b"0"] * WIDE) + b"]}}",
    b'{"t":"done","id":1,"ok":true,"result":' + b"[" * (MAX_VALUES + 40) + b"]" * (
        MAX_VALUES + 40) + b"}",
], ids=["lists", "strings", "numbers", "nesting"])
def test_a_frame_past_them_is_refused_on_its_bytes(body: bytes) -> None:
    with pytest.raises(frames.FrameInvalid):
        frames.check_child_structure(body)
