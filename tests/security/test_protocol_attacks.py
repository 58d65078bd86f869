"""Protocol attacks: a hostile child (or a corrupted pipe) against the frame decoder and the host.

Two levels:

* the decoder: `sandbox.wire.FrameReader` reading a real pipe we write to, and the pydantic
  frame adapters `CHILD_FRAME` / `HOST_FRAME` plus `check_json_value` (the nesting/size caps);
* a real host `Child` wired to a fake child process (sechelp.FAKE_CHILD) that speaks the
  protocol badly. Whatever it sends, the host must raise only its documented exceptions
  (`ChildDied`, `LayerMissing`, `AppFailed`), kill that child, and return promptly.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import time
from typing import Any

import pytest
from pydantic import ValidationError
from sechelp import fake, fakes_fixture, start_fake_child  # noqa: F401  (the fixture)

from host.errors import GateError
from host.supervise.child import AppFailed, Child, ChildDied, LayerMissing
from sandbox import frames
from sandbox.protocol import CHILD_FRAME, HOST_FRAME
from sandbox.wire import ChannelClosed, FrameError, FrameReader, encode
from sandbox.wirecaps import (
    MAX_FRAME_BYTES,
    MAX_ITEMS,
    MAX_NESTING,
    MAX_STRING,
    MAX_VALUES,
    check_json_value,
)

# ---- frame level --------------------------------------------------------------------------


def _reader_for(data: bytes, close: bool = True) -> tuple[FrameReader, int]:
    r, w = os.pipe()

    def feed() -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(w, view):]
        finally:
            if close:
                os.close(w)

    threading.Thread(target=feed, daemon=True).start()
    return FrameReader(r), r


def _frame(obj: Any) -> bytes:
    return encode(json.dumps(obj).encode())


def test_reader_control_two_frames_then_eof() -> None:
    reader, r = _reader_for(_frame({"a": 1}) + _frame([2]))
    assert json.loads(reader.read()) == {"a": 1}
    assert json.loads(reader.read()) == [2]
    with pytest.raises(ChannelClosed):
        reader.read()
    os.close(r)


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x05abc",
                                  b"\x00\x00\x00\x01"])
def test_truncated_frames(data: bytes) -> None:
    reader, r = _reader_for(data)
    with pytest.raises(FrameError):
        reader.read()
    os.close(r)


def test_oversize_length_refused_before_reading_body() -> None:
    # the writer never closes and sends no body: the reader must refuse on the header alone
    reader, r = _reader_for(struct.pack(">I", MAX_FRAME_BYTES + 1), close=False)
    start = time.monotonic()
    with pytest.raises(FrameError, match="exceeds"):
        reader.read()
    assert time.monotonic() - start < 1
    reader2, r2 = _reader_for(b"\xff\xff\xff\xff", close=False)
    with pytest.raises(FrameError):
        reader2.read()
    os.close(r)
    os.close(r2)


def test_encode_refuses_oversize() -> None:
    with pytest.raises(FrameError):
        encode(b"x" * (MAX_FRAME_BYTES + 1))


LAYERS = dict(seccomp=True, landlock=True, no_new_privs=True, netns=True, ipcns=True, pidns=True,
              rlimits=True, pdeathsig=True, fds_closed=True, empty_env=True, uid_dropped=True,
              empty_root=True)

BAD_CHILD_BODIES: list[bytes] = [
    b"",  # empty frame
    b"\xff\xfe\xfd",  # invalid UTF-8
    b'{"t": "done", "id": 1, "ok": true, "result": "\xc3\x28"}',  # invalid UTF-8 in a string
    b"not json",
    b"[]",
    b'"done"',
    b'{"t": "evil"}',  # unknown frame type
    b'{"t": "reply", "id": 1, "ok": true}',  # a host frame type from the child
    b'{"t": "exec", "id": 1, "source": "x"}',
    b'{"t": "done", "id": 1, "ok": true, "extra": 1}',  # extra field
    b'{"t": "done", "id": "1", "ok": true}',  # wrong type (strict: no coercion)
    b'{"t": "done", "id": 1, "ok": 1}',
    b'{"t": "done", "id": 0, "ok": true}',  # ids start at 1
    b'{"t": "done", "id": -5, "ok": true}',
    b'{"t": "done", "id": 9007199254740993, "ok": true}',  # >= 2**53
    b'{"t": "done", "ok": true}',  # missing id
    b'{"t": "call", "id": 1, "action": "Users.Get", "args": {}}',  # bad action name
    b'{"t": "call", "id": 1, "action": "../etc", "args": {}}',
    b'{"t": "call", "id": 1, "action": "' + b"a" * 129 + b'", "args": {}}',
    b'{"t": "call", "id": 1, "action": "users.get", "args": []}',
    b'{"t": "call", "id": 1, "action": "users.get", "args": {}, "app_id": "other"}',
    b'{"t": "call", "id": 1, "action": "users.get", "args": {}, "install": "x"}',
    b'{"t": "log", "text": "' + b"x" * (64 * 1024 + 1) + b'"}',
    b'{"t": "done", "id": 1, "ok": false, "error": {"code": "x", "message": "'
    + b"m" * 3000 + b'"}}',
    b'{"t": "hello", "v": 1, "token": "t", "layers": {}}',
    b'{"t": "hello", "v": 1, "token": "t", "layers": ' + json.dumps(
        {**LAYERS, "seccomp": "yes"}).encode() + b"}",
    b'{"t": "loaded", "ok": true, "handlers": ["on_x"], "error": null, "pid": 1}',
    b'{"t": "done", "id": 1, "ok": true, "result": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"t": "done", "id": 1, "ok": true, "t": "log"}',  # duplicate discriminator
]


@pytest.mark.parametrize("body", BAD_CHILD_BODIES, ids=range(len(BAD_CHILD_BODIES)))
def test_child_frame_decoder_refuses(body: bytes) -> None:
    """Only ValidationError ever comes out of the decoder (the host turns it into a kill)."""
    try:
        frame = CHILD_FRAME.validate_json(body)
    except ValidationError:
        return
    # a few bodies are *valid* JSON the model accepts only if the caps catch them later
    result = getattr(frame, "result", None)
    with pytest.raises(ValueError):
        check_json_value(result)


@pytest.mark.parametrize("body", [
    b'{"t": "done", "id": 1, "ok": true, "result": 1e999999}',
    b'{"t": "done", "id": 1, "ok": true, "result": NaN}',
    b'{"t": "call", "id": 1, "action": "persistence.put", "args": {"key": "k", "value": -Infinity}}',
], ids=["overflow-to-inf", "nan", "neg-infinity-in-args"])
def test_non_finite_numbers_refused(body: bytes) -> None:
    """NaN/Infinity are not JSON: pydantic's parser accepts them (and 1e999999 becomes inf), and
    check_json_value lets any float through, so a child can hand the host's gate, store and
    audit digests values that `json.dumps(..., allow_nan=False)` or a strict JSON consumer
    (the server's REST clients) refuse, and NaN != NaN breaks equality-based policy rules."""
    try:
        frame = CHILD_FRAME.validate_json(body)
    except ValidationError:
        return
    value = getattr(frame, "result", None) if hasattr(frame, "result") else frame.args
    with pytest.raises(ValueError):
        check_json_value(value)


BAD_HOST_BODIES: list[bytes] = [
    b"", b"\xff", b'{"t": "call", "id": 1, "action": "a", "args": {}}',
    b'{"t": "hello", "v": 1, "token": "' + b"t" * 5000 + b'"}',
    b'{"t": "reply", "id": 1, "ok": true, "result": null, "error": null, "x": 1}',
    b'{"t": "load", "app_id": "A", "modules": {}, "entry_module": "m", "entry_class": "C", '
    b'"settings": {}}',
    b'{"t": "exec", "id": 1, "source": 5}',
]


@pytest.mark.parametrize("body", BAD_HOST_BODIES, ids=range(len(BAD_HOST_BODIES)))
def test_host_frame_decoder_refuses(body: bytes) -> None:
    with pytest.raises(ValidationError):
        HOST_FRAME.validate_json(body)


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("value", "ok"), [
    (_nest(MAX_NESTING), True),
    (_nest(MAX_NESTING + 1), False),
    ({"k": _nest(MAX_NESTING)}, False),
    ("x" * MAX_STRING, True),
    ("x" * (MAX_STRING + 1), False),
    (list(range(MAX_ITEMS)), True),
    (list(range(MAX_ITEMS + 1)), False),
    ({str(i): i for i in range(MAX_ITEMS + 1)}, False),
    ({"k" * 129: 1}, False),
    ({1: 1}, False),
    (2 ** 63, False),
    (-(2 ** 63), False),
    (2 ** 63 - 1, True),
    (True, True),
    (1.5, True),
    (b"bytes", False),
    ((1, 2), False),
    ({1, 2}, False),
    (object(), False),
])
def test_check_json_value_caps(value: Any, ok: bool) -> None:
    if ok:
        check_json_value(value)
    else:
        with pytest.raises(ValueError):
            check_json_value(value)


def _values(count: int) -> list[Any]:
    """A list holding `count` values in all (itself included), each list within the item cap."""
    rows, rest = divmod(count - 1, MAX_ITEMS + 1)
    value: list[Any] = [[0] * MAX_ITEMS for _ in range(rows)]
    if rest:
        value.append([0] * (rest - 1))
    return value


def test_check_json_value_caps_the_values_of_the_whole() -> None:
    """Each list within its cap, the whole over `MAX_VALUES`: refused, and the check stops
    there (a value past the cap that breaks another cap is never reached)."""
    check_json_value(_values(MAX_VALUES))
    with pytest.raises(ValueError, match=f"more than {MAX_VALUES} values"):
        check_json_value(_values(MAX_VALUES + 1))
    with pytest.raises(ValueError, match=f"more than {MAX_VALUES} values"):
        check_json_value({"a": _values(MAX_VALUES), "b": float("nan")})


class _Lying(dict):  # type: ignore[type-arg]
    """A dict that hides its contents from `items()`; the frame encoder reads its storage."""

    def items(self) -> Any:
        return iter(())


class _LyingList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


class _Str(str):
    pass


def test_check_json_value_reads_subclasses_as_the_encoder_does() -> None:
    """A dict or list subclass is checked through its real storage (what `frames.encode`
    writes), not through methods an app may override: a lying `items()` used to let a value
    over every cap past the child's check, onto the host's channel."""
    from collections import Counter, OrderedDict

    for liar in (_Lying(k=_nest(MAX_NESTING + 2)), _LyingList([_nest(MAX_NESTING + 2)])):
        body = frames.encode(frames.Call(id=1, action="a.b", args={"v": liar}))
        assert body.count(b"[") > MAX_NESTING
        with pytest.raises(ValueError, match="nesting deeper"):
            check_json_value({"v": liar})
    check_json_value({"c": Counter(a=2), "o": OrderedDict(b=[1])})  # what apps may import
    with pytest.raises(ValueError, match="not JSON data"):  # the encoder refuses it as well
        check_json_value({"s": _Str("x")})


# ---- against a real host Child ------------------------------------------------------------


def _accept_token(_token: str) -> None:
    pass


def _no_log(_text: str, _truncated: bool) -> None:
    pass


def _assert_killed(child: Child) -> None:
    assert child.dead
    assert child.popen is not None
    child.popen.wait(timeout=3)  # it really is gone, not just marked dead


HANDSHAKE_ATTACKS: dict[str, list[Any]] = {
    "garbage": [["recv"], ["raw", (b"\x00\x00\x00\x08" + b"garbage!").hex()]],
    "invalid_utf8": [["recv"], ["raw", (b"\x00\x00\x00\x03\xff\xfe\xfd").hex()]],
    "oversize_length": [["recv"], ["raw", "7fffffff"]],
    "truncated_then_exit": [["recv"], ["raw", "0000001000"], ["exit", 0]],
    "exit_silently": [["recv"], ["exit", 3]],
    "extra_field": [["recv"], ["send", {"t": "hello", "v": 1, "token": "x", "layers": LAYERS,
                                        "app_id": "other"}]],
    "wrong_version": [["recv"], ["send", {"t": "hello", "v": 2, "token": "x",
                                          "layers": LAYERS}]],
    "loaded_instead": [["recv"], ["send", {"t": "loaded", "ok": True}]],
    "done_instead": [["recv"], ["send", {"t": "done", "id": 1, "ok": True}]],
    "wrong_types": [["recv"], ["send", {"t": "hello", "v": "1", "token": "x",
                                        "layers": LAYERS}]],
}


@pytest.mark.parametrize("name", sorted(HANDSHAKE_ATTACKS))
def test_bad_handshake_drops_child(fakes: list[Child], name: str) -> None:
    child = fake(fakes, HANDSHAKE_ATTACKS[name])
    start = time.monotonic()
    with pytest.raises(ChildDied):
        child.handshake("tok", _accept_token, degraded=False)
    assert time.monotonic() - start < 3
    _assert_killed(child)


def test_handshake_missing_layers_refused(fakes: list[Child]) -> None:
    layers = {**LAYERS, "seccomp": False, "netns": False}
    child = fake(fakes, [["recv"], ["send", {"t": "hello", "v": 1, "token": "tok",
                                              "layers": layers}]])
    with pytest.raises(LayerMissing, match="seccomp, netns"):
        child.handshake("tok", _accept_token, degraded=False)
    _assert_killed(child)


def test_handshake_silent_child_killed_at_deadline(fakes: list[Child]) -> None:
    child = fake(fakes, [["recv"], ["sleep", 60]])
    start = time.monotonic()
    with pytest.raises(ChildDied):
        child.handshake("tok", _accept_token, degraded=False)
    assert time.monotonic() - start < 5.0 + 2.0  # HANDSHAKE_TIMEOUT_S + slack
    _assert_killed(child)


EXEC_ATTACKS: dict[str, list[Any]] = {
    # a Done for a request id the host never sent
    "done_unknown_id": [["send", {"t": "done", "id": 999999, "ok": True}]],
    "unknown_frame_type": [["send", {"t": "evil", "id": 1}]],
    "hello_again": [["send", {"t": "hello", "v": 1, "token": "x", "layers": LAYERS}]],
    "loaded_during_exec": [["send", {"t": "loaded", "ok": True}]],
    "extra_field_call": [["send", {"t": "call", "id": 1, "action": "users.get", "args": {},
                                   "as_app": "other"}]],
    "bad_action_name": [["send", {"t": "call", "id": 1, "action": "USERS", "args": {}}]],
    "oversize_frame": [["raw", "00100001"]],
    "invalid_utf8": [["raw", (b"\x00\x00\x00\x02\xc3\x28").hex()]],
    "deep_json": [["raw", (struct.pack(">I", 20001) + b"[" * 10000 + b"1"
                           + b"]" * 10000).hex()]],
    "crash_mid_exec": [["exit", 1]],
}


@pytest.mark.parametrize("name", sorted(EXEC_ATTACKS))
def test_bad_frames_during_exec_drop_child(fakes: list[Child], name: str) -> None:
    child = fake(fakes, [["hello"], ["recv"], *EXEC_ATTACKS[name]])
    child.handshake("tok", _accept_token, degraded=False)
    start = time.monotonic()
    with pytest.raises(ChildDied):
        child.exec_source("print(1)", 10.0, _no_log)
    assert time.monotonic() - start < 3
    _assert_killed(child)
    # the dead child refuses further work with the same documented error, at once
    with pytest.raises(ChildDied):
        child.exec_source("print(1)", 10.0, _no_log)


def test_call_before_load_is_a_violation(fakes: list[Child]) -> None:
    """A Call outside an event (the host is loading, not running a handler) ends the child."""
    child = fake(fakes, [["hello"], ["recv"],
                          ["send", {"t": "call", "id": 1, "action": "users.get",
                                    "args": {"user_id": "u"}}]])
    child.handshake("tok", _accept_token, degraded=False)
    with pytest.raises(ChildDied):
        child.load("app", {"m": ""}, "m", "A", {}, _no_log)
    _assert_killed(child)


def test_hung_exec_killed_at_deadline(fakes: list[Child]) -> None:
    child = fake(fakes, [["hello"], ["recv"], ["sleep", 60]])
    child.handshake("tok", _accept_token, degraded=False)
    start = time.monotonic()
    with pytest.raises(ChildDied) as info:
        child.exec_source("x", 1.0, _no_log)
    assert info.value.code == "timeout"
    assert time.monotonic() - start < 1.0 + 2.0
    _assert_killed(child)


def test_call_args_over_caps_get_an_error_reply_not_a_crash(fakes: list[Child]) -> None:
    """Caps on args: the host answers invalid_argument and never calls the gate."""
    deep = _nest(MAX_NESTING + 3)
    child = fake(fakes, [["hello"], ["recv"],
                          ["send", {"t": "call", "id": 1, "action": "users.get",
                                    "args": {"x": deep}}],
                          ["recv"],
                          ["send", {"t": "done", "id": 1, "ok": True, "result": "fine"}]])
    child.handshake("tok", _accept_token, degraded=False)
    seen: list[str] = []

    def on_call(_c: Child, action: str, _args: dict[str, Any]) -> Any:
        seen.append(action)
        return {}

    # the fake answers `done` with id 1; the host's event ids are global, so ask for that one
    with pytest.raises((ChildDied, AppFailed)):
        child.deliver("x.y", {}, 5.0, on_call, _no_log)
    assert seen == [], "an over-cap argument reached the gate"


def test_call_flood_is_cut_off(fakes: list[Child]) -> None:
    from host.supervise.child import MAX_CALLS_PER_EVENT

    child = fake(fakes, [["hello"], ["recv"], ["flood_calls", MAX_CALLS_PER_EVENT + 5]])
    child.handshake("tok", _accept_token, degraded=False)
    count = [0]

    def on_call(_c: Child, _action: str, _args: dict[str, Any]) -> Any:
        count[0] += 1
        raise GateError("permission_denied", "no")

    with pytest.raises(ChildDied) as info:
        child.deliver("x.y", {}, 30.0, on_call, _no_log)
    assert info.value.code == "flood"
    assert count[0] == MAX_CALLS_PER_EVENT
    _assert_killed(child)


@pytest.mark.parametrize("flood", [
    ["logs", 40, "x", 65_536],  # 2.6 MB of text: more than a runtime child ever prints
    ["logs", 21_000, "", 1],  # empty frames: no text to count, each still read and decoded
], ids=["characters", "frames"])
def test_a_log_flood_past_the_cap_kills_the_child_instead_of_being_read_to_the_deadline(
        fakes: list[Child], flood: list[Any]) -> None:
    """Past the host's log cap the rest of an event's Log frames were read, decoded and
    dropped until the event's deadline, a host thread busy the whole time (before: the event
    ended at its 30 s deadline as a timeout). More than a child in its runtime can send
    (`logcap.LOG_FLOOD_*`) now kills it at once."""
    child = fake(fakes, [["hello"], ["recv"], flood, ["sleep", 60]])
    child.handshake("tok", _accept_token, degraded=False)
    start = time.monotonic()
    with pytest.raises(ChildDied) as info:
        child.deliver("x.y", {}, 30.0, _no_calls, _no_log)
    assert info.value.code == "flood" and "log flood" in str(info.value)
    assert time.monotonic() - start < 15
    _assert_killed(child)


def test_the_log_flood_bounds_stay_above_what_a_runtime_child_can_send() -> None:
    from host.supervise.child import MAX_CALLS_PER_EVENT
    from host.supervise.logcap import LOG_FLOOD_CHARS, LOG_FLOOD_FRAMES
    from sandbox.restricted import PRINT_FLUSH_BYTES, PRINT_TOTAL_CAP

    # one frame per bridge call, per PRINT_FLUSH_BYTES and at the end; PRINT_TOTAL_CAP in all
    assert LOG_FLOOD_FRAMES >= 2 * (MAX_CALLS_PER_EVENT + PRINT_TOTAL_CAP // PRINT_FLUSH_BYTES + 1)
    assert LOG_FLOOD_CHARS >= 2 * PRINT_TOTAL_CAP


def _no_calls(_c: Child, _action: str, _args: dict[str, Any]) -> Any:
    raise AssertionError("no call expected")


def test_unexpected_gate_exception_does_not_escape_as_host_crash(fakes: list[Child]) -> None:
    """The gate answers with GateError; a ValueError (bad args) becomes invalid_argument."""
    child = fake(fakes, [["hello"], ["recv"],
                          ["send", {"t": "call", "id": 1, "action": "users.get",
                                    "args": {"user_id": "u"}}],
                          ["recv"], ["sleep", 30]])
    child.handshake("tok", _accept_token, degraded=False)

    def on_call(_c: Child, _action: str, _args: dict[str, Any]) -> Any:
        raise ValueError("bad argument shape")

    with pytest.raises(ChildDied):
        child.deliver("x.y", {}, 1.0, on_call, _no_log)
    _assert_killed(child)


def test_reply_over_the_frame_cap_is_an_error_the_app_sees(fakes: list[Child]) -> None:
    """A bridge result that escapes past the frame cap (300 KB of control bytes under the body
    cap becomes ~1.8 MB of JSON) is answered with an error reply; the host's send does not
    raise and leave the child waiting with its deadline disarmed."""
    child = fake(fakes, [["hello"], ["event"],
                          ["send", {"t": "call", "id": 1, "action": "http.get", "args": {}}],
                          ["done_with_reply"]])
    child.handshake("tok", _accept_token, degraded=False)

    def on_call(_c: Child, _action: str, _args: dict[str, Any]) -> Any:
        return {"body": "\x01" * 300_000}

    reply = child.deliver("x.y", {}, 5.0, on_call, _no_log)
    assert reply["ok"] is False and reply["error"]["code"] == "reply_too_large", reply
