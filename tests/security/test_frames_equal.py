"""The msgspec frames (`sandbox/frames.py`) accept exactly what the pydantic reference accepts.

Both ends decode with `frames.decode_child` / `frames.decode_host` on the hot path; the pydantic
models in `sandbox/protocol.py` are the reference (DESIGN conventions). A frame either decoder
refuses and the other accepts is a hole (the struct looser) or a denial the old host never gave
(the struct stricter). Hypothesis builds frames of every type from valid ones, then breaks them:
an extra field, a missing one, a value of the wrong JSON type, strings and lists at and past
their caps, names that end in a newline, ids at the edges, non-finite numbers, deep nesting.
"""
from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_protocol_attacks import BAD_CHILD_BODIES

from sandbox import frames
from sandbox.protocol import CHILD_FRAME, HOST_FRAME
from sandbox.wirecaps import MAX_LOG, MAX_MESSAGE, MAX_NAME

_LAYERS = dict(seccomp=True, landlock=True, no_new_privs=True, netns=True, ipcns=True,
               pidns=True, rlimits=True, pdeathsig=True, fds_closed=True, empty_env=True,
               uid_dropped=True, empty_root=True, notes=["n"])

CHILD_SEEDS: list[dict[str, Any]] = [
    {"t": "hello", "v": 1, "token": "stk1.x.y", "layers": _LAYERS, "uid": 1001, "gid": 1001},
    {"t": "loaded", "ok": True, "handlers": ["on_x"], "error": None},
    {"t": "loaded", "ok": False, "error": {"code": "load_failed", "message": "m"}},
    {"t": "call", "id": 7, "action": "users.get", "args": {"user_id": "u", "n": [1, 2.5, None]}},
    {"t": "done", "id": 7, "ok": True, "result": {"a": [True, "x"]}},
    {"t": "done", "id": 7, "ok": False, "error": {"code": "app_error", "message": "boom"}},
    {"t": "log", "text": "hi", "truncated": True},
]
HOST_SEEDS: list[dict[str, Any]] = [
    {"t": "hello", "v": 1, "token": "stk1.x.y", "uid": 1001, "gid": None},
    {"t": "load", "app_id": "a.b", "app_user_id": None, "modules": {"m": "x = 1"},
     "entry_module": "m", "entry_class": "A", "settings": {"k": 1}},
    {"t": "event", "id": 3, "name": "livechat.room_started", "payload": {"room": {"id": "r"}}},
    {"t": "exec", "id": 3, "source": "print(1)"},
    {"t": "reply", "id": 3, "ok": True, "result": [1, {"x": None}]},
    {"t": "reply", "id": 3, "ok": False, "error": {"code": "denied", "message": "no"}},
    {"t": "shutdown"},
]

# Values that sit on an edge of some field's rule.
_EDGES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 0.5, (1 << 53) - 1, 1 << 53, 2**31 - 1, 2**31, 1 << 64,
    "", "a", "a\n", "a.b", "A", "1a", "x" * MAX_NAME, "x" * (MAX_NAME + 1),
    "m" * MAX_MESSAGE, "m" * (MAX_MESSAGE + 1), "t" * 4097, "l" * (MAX_LOG + 1),
    "é" * MAX_NAME, "é" * (MAX_NAME + 1), [], ["on_x"] * 65, ["n"] * 17, ["on_x\n"], {}, {"k": 1},
    {"": 1}, [[[[]]]], "call", "done", "reply",
]
_RAW_EDGES = [b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"[" * 3000 + b"]" * 3000]


def _mutations(seed: dict[str, Any]) -> st.SearchStrategy[bytes]:
    keys = sorted(seed)
    body = st.fixed_dictionaries({}).map(lambda _: dict(seed))

    def set_value(d: dict[str, Any], key: str, value: Any) -> bytes:
        return json.dumps({**d, key: value}).encode()

    def set_nested(d: dict[str, Any], key: str, sub: str, value: Any) -> bytes:
        inner = d.get(key)
        inner = {**inner, sub: value} if isinstance(inner, dict) else {sub: value}
        return json.dumps({**d, key: inner}).encode()

    def drop(d: dict[str, Any], key: str) -> bytes:
        return json.dumps({k: v for k, v in d.items() if k != key}).encode()

    def raw_value(d: dict[str, Any], key: str, raw: bytes) -> bytes:
        rest = json.dumps({k: v for k, v in d.items() if k != key}).encode()
        return rest[:-1] + (b", " if len(rest) > 2 else b"") + json.dumps(key).encode() + b": " \
            + raw + b"}"

    field = st.sampled_from([*keys, "extra", "app_id", "install", "layers", "error"])
    value = st.sampled_from(_EDGES)
    nested = st.sampled_from(["code", "message", "seccomp", "pidns", "notes", "extra", "k"])
    return st.one_of(
        st.builds(set_value, body, field, value),
        st.builds(set_nested, body, field, nested, value),
        st.builds(drop, body, st.sampled_from(keys)),
        st.builds(raw_value, body, field, st.sampled_from(_RAW_EDGES)),
        st.builds(lambda d: json.dumps(d).encode(), body),
    )


def _same(reference: Any, decode: Any, body: bytes) -> None:
    try:
        want = reference.validate_json(body)
    except ValidationError:
        want = None
    try:
        got = decode(body)
    except frames.FrameInvalid:
        got = None
    assert (want is None) == (got is None), (body[:200], want, got)
    if want is not None:
        assert _plain(msgspec.to_builtins(got)) == _plain(want.model_dump()), body[:200]


def _plain(value: Any) -> Any:
    """Comparable data: NaN equal to itself, dict key order ignored."""
    return json.loads(json.dumps(value, sort_keys=True, default=str, allow_nan=True),
                      parse_constant=lambda c: c) if not isinstance(value, float) or not \
        math.isnan(value) else "NaN"


@pytest.mark.parametrize("seed", range(len(CHILD_SEEDS)))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_child_frames_decode_exactly_as_the_reference(seed: int, data: st.DataObject) -> None:
    _same(CHILD_FRAME, frames.decode_child, data.draw(_mutations(CHILD_SEEDS[seed])))


@pytest.mark.parametrize("seed", range(len(HOST_SEEDS)))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_host_frames_decode_exactly_as_the_reference(seed: int, data: st.DataObject) -> None:
    _same(HOST_FRAME, frames.decode_host, data.draw(_mutations(HOST_SEEDS[seed])))


@pytest.mark.parametrize("body", BAD_CHILD_BODIES, ids=range(len(BAD_CHILD_BODIES)))
def test_every_known_bad_child_body_gets_the_reference_answer(body: bytes) -> None:
    _same(CHILD_FRAME, frames.decode_child, body)


@pytest.mark.parametrize("body", [
    # over-long: an action name one past its cap, an error message one past its cap
    b'{"t":"call","id":1,"action":"' + b"a" * (MAX_NAME + 1) + b'","args":{}}',
    b'{"t":"done","id":1,"ok":false,"error":{"code":"c","message":"'
    + b"m" * (MAX_MESSAGE + 1) + b'"}}',
    # an extra field naming another app (rule 1), at the top and inside an error
    b'{"t":"call","id":1,"action":"users.get","args":{},"app_id":"other"}',
    b'{"t":"done","id":1,"ok":false,"error":{"code":"c","message":"m","trace":"x"}}',
    # wrong types: no coercion of "1" to 1, of 1 to true, of 1.0 to 1
    b'{"t":"call","id":"1","action":"users.get","args":{}}',
    b'{"t":"done","id":1,"ok":1}',
    b'{"t":"done","id":1.0,"ok":true}',
    # a name that Python's `$` would let through before a trailing newline
    b'{"t":"call","id":1,"action":"users.get\\n","args":{}}',
])
def test_over_long_extra_field_and_wrong_type_frames_are_refused(body: bytes) -> None:
    with pytest.raises(ValidationError):
        CHILD_FRAME.validate_json(body)
    with pytest.raises(frames.FrameInvalid):
        frames.decode_child(body)


def test_non_finite_numbers_reach_the_caps_as_before() -> None:
    """pydantic's parser reads NaN, msgspec's does not: the reference decides, and the Call
    carries the NaN on to `check_json_value`, which refuses it with an error reply."""
    call = frames.decode_child(b'{"t":"call","id":1,"action":"a","args":{"x":NaN}}')
    assert isinstance(call, frames.Call) and math.isnan(call.args["x"])


def test_the_hot_frames_encode_as_the_reference_does() -> None:
    for frame in (frames.Call(id=9, action="users.get", args={"user_id": "u"}),
                  frames.Reply(id=9, ok=True, result={"a": [1, "é", None]}),
                  frames.Reply(id=9, ok=False, error=frames.WireError(code="c", message="m"))):
        body = frames.encode(frame)
        ref = (CHILD_FRAME if isinstance(frame, frames.Call) else HOST_FRAME).validate_json(body)
        assert json.loads(body) == json.loads(ref.model_dump_json())
