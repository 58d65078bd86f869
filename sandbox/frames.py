"""The wire frames as msgspec structs: what both ends decode and the hot frames they encode.

`sandbox/protocol.py` holds the frames as pydantic models, the reference (DESIGN conventions:
pydantic at every boundary; on the bridge call's hot path a msgspec struct with
`forbid_unknown_fields` and the same caps may stand in, proven equal by property tests).
These structs mirror them field for field, with the same caps: a bridge call's four frame steps
(Call encoded and decoded, Reply encoded and decoded) cost ~17 µs through pydantic and ~4.5 µs
here in a warm loop, more apart in a woken child with cold caches (docs/BENCH.md).

Same strictness, by construction where the two parsers differ: `decode_child` / `decode_host`
accept a body only if the pydantic adapter would. msgspec is the fast path; whatever it
refuses (or cannot parse: `NaN`, a number out of a float's range, nesting past Python's
recursion limit) goes to the pydantic adapter, which refuses it as before or accepts it as
before (a `NaN` in a Call's args is then refused by `check_json_value`, with the same
`invalid_argument` reply as ever). Where msgspec would be looser than pydantic, the struct is
written tighter: patterns end in `\\Z`, because Python's `$` (msgspec uses `re`) also
matches before a trailing newline and pydantic's regex does not. Tests:
`tests/security/test_frames_equal.py` (hypothesis, both directions, every frame type).

A child's runtime alone decodes with msgspec only (`decode_host(..., reference=False)`): it
reads what the host's `encode` wrote, never a body msgspec refuses and the adapter reads, and
so imports no pydantic (`tests/spine/test_spine_zygote_imports.py`).
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from sandbox import wirecaps as P

# The caps are the reference's own constants (`wirecaps`, which protocol.py uses too), so the
# two definitions cannot drift apart.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=P.MAX_NAME,
                                   pattern=r"^[a-z][a-z0-9_.-]*\Z")]
RequestId = Annotated[int, msgspec.Meta(ge=1, lt=1 << 53)]
Token = Annotated[str, msgspec.Meta(max_length=4096)]
Ident = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Short = Annotated[str, msgspec.Meta(max_length=64)]


class _Frame(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="t"):
    """A frame: `t` names its type (the tag), no unknown field is accepted."""


class WireError(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(max_length=P.MAX_NAME)]
    message: Annotated[str, msgspec.Meta(max_length=P.MAX_MESSAGE)]


# ---- host -> child -------------------------------------------------------------------------


class HostHello(_Frame, tag="hello", frozen=True):
    v: int
    token: Token
    uid: Ident | None = None
    gid: Ident | None = None


class Load(_Frame, tag="load", frozen=True):
    app_id: Name
    modules: dict[Short, Annotated[str, msgspec.Meta(max_length=1 << 19)]]
    entry_module: Short
    entry_class: Short
    settings: dict[str, Any]
    app_user_id: Short | None = None


class Event(_Frame, tag="event", frozen=True):
    id: RequestId
    name: Name
    payload: dict[str, Any]


class Exec(_Frame, tag="exec", frozen=True):
    id: RequestId
    source: Annotated[str, msgspec.Meta(max_length=1 << 20)]


class Reply(_Frame, tag="reply", frozen=True):
    id: RequestId
    ok: bool
    result: Any = None
    error: WireError | None = None
    spin: bool = False  # the host's hint: poll for the next Reply (a burst, cores apart)


class Shutdown(_Frame, tag="shutdown", frozen=True):
    pass


# ---- child -> host -------------------------------------------------------------------------


class Layers(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seccomp: bool
    landlock: bool
    no_new_privs: bool
    netns: bool
    ipcns: bool
    rlimits: bool
    pdeathsig: bool
    fds_closed: bool
    empty_env: bool
    uid_dropped: bool
    pidns: bool = False  # absent in an older child's report: missing, never assumed
    empty_root: bool = False  # likewise
    memory_cgroup: bool = False  # likewise
    notes: Annotated[list[Annotated[str, msgspec.Meta(max_length=256)]],
                     msgspec.Meta(max_length=16)] = msgspec.field(default_factory=list)


class ChildHello(_Frame, tag="hello", frozen=True):
    v: int
    token: Token
    layers: Layers
    uid: Ident | None = None
    gid: Ident | None = None


class Loaded(_Frame, tag="loaded", frozen=True):
    ok: bool
    handlers: Annotated[list[Name], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=list)
    error: WireError | None = None


class Call(_Frame, tag="call", frozen=True):
    id: RequestId
    action: Name
    args: dict[str, Any]


class Done(_Frame, tag="done", frozen=True):
    id: RequestId
    ok: bool
    result: Any = None
    error: WireError | None = None


class Log(_Frame, tag="log", frozen=True):
    text: Annotated[str, msgspec.Meta(max_length=P.MAX_LOG)]
    truncated: bool = False


HostFrame = HostHello | Load | Event | Exec | Reply | Shutdown
ChildFrame = ChildHello | Loaded | Call | Done | Log

_CHILD = msgspec.json.Decoder(ChildFrame)
_HOST = msgspec.json.Decoder(HostFrame)
_ENCODER = msgspec.json.Encoder()


class FrameInvalid(ValueError):
    """A frame body the protocol refuses (the pydantic reference refused it too)."""


# How much JSON structure a frame from a child may hold outside its strings. Guards the host's
# CPU and memory: a decoder builds every value as a Python object before any cap is checked,
# and a 1 MiB frame of `[],[],...` is 333,000 lists: ~110 ms of the host's interpreter lock and
# ~25 MiB per frame through a real host, the garbage collector walking every one (a Done
# frame's result, which nothing charges, on the event pump's thread that serves every app).
# Data of V values is written with at most V brackets (one per object or array) and 2V
# separators (an object of k members: k `:` and k-1 `,`; an array: one `,` between items),
# and a runtime child sends at most MAX_VALUES values in a Call's args or a handler's result
# (`check_json_value`), plus its frame's own few fields (a hello's layer report the most).
MAX_CHILD_BRACKETS = P.MAX_VALUES + 32
MAX_CHILD_SEPARATORS = 2 * P.MAX_VALUES + 64


def check_child_structure(body: bytes) -> None:
    """FrameInvalid when `body` holds more brackets or separators, outside its strings, than
    any frame a child's runtime sends; call before `decode_child` on what a child wrote.

    Counted on the bytes, never decoded: a few passes at C speed (none for a frame shorter
    than the limits, which cannot hold more). Only code that escaped its runtime sends such a
    frame, so the host drops its channel, as for any frame the protocol refuses."""
    if len(body) <= MAX_CHILD_BRACKETS:
        return
    brackets, separators = _structure(body)
    if brackets <= MAX_CHILD_BRACKETS and separators <= MAX_CHILD_SEPARATORS:
        return  # the usual case: few enough even counted inside the strings
    # Strings may hold those characters too: count again without them. Escaped backslashes
    # first, then escaped quotes, so every `"` left opens or closes a string (exact for JSON
    # that parses; a decoder stops at its first error, and this count is exact before it).
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    if plain.count(b'"') > 2 * MAX_CHILD_SEPARATORS:  # each key or string value: two
        raise FrameInvalid("frame holds more strings than a runtime child sends")
    brackets, separators = _structure(b"".join(plain.split(b'"')[0::2]))
    if brackets > MAX_CHILD_BRACKETS or separators > MAX_CHILD_SEPARATORS:
        raise FrameInvalid(f"frame holds more than {P.MAX_VALUES} values' worth of JSON "
                           "structure (more than a runtime child sends)")


# Every byte but the four `_structure` counts: one `translate` pass keeps only those (~0.4 ms
# for a 1 MiB frame of strings, a third of four `count` passes; its decode takes about as long).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"{[,:")


def _structure(body: bytes) -> tuple[int, int]:
    """(brackets, separators) in `body`: `{` and `[`, `,` and `:`."""
    kept = body.translate(None, _NOT_STRUCTURE)
    return (kept.count(b"{") + kept.count(b"["), kept.count(b",") + kept.count(b":"))


def decode_child(body: bytes) -> ChildFrame:
    """A child's frame, as strictly as `protocol.CHILD_FRAME`; FrameInvalid if refused."""
    try:
        return _CHILD.decode(body)
    except (msgspec.DecodeError, RecursionError):
        from sandbox import protocol

        return _by_reference(protocol.CHILD_FRAME, body, ChildFrame)  # type: ignore[no-any-return]


def decode_host(body: bytes, *, reference: bool = True) -> HostFrame:
    """A host's frame, as strictly as `protocol.HOST_FRAME`; FrameInvalid if refused.

    `reference` False, in a child's runtime: what msgspec refuses is refused, with no word from
    the pydantic adapter, which the child never imports (its zygote starts ~0.3 s sooner at
    every host's start, and every child shared pydantic's memory). Only the host writes these
    frames, with `encode`, which never writes what msgspec refuses and the adapter reads (a
    `NaN`, an infinity: msgspec writes `null`), so the child reads every frame as before."""
    try:
        return _HOST.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        if not reference:
            raise FrameInvalid(str(exc)[:300]) from None
        from sandbox import protocol

        return _by_reference(protocol.HOST_FRAME, body, HostFrame)  # type: ignore[no-any-return]


def _by_reference(adapter: Any, body: bytes, union: Any) -> Any:
    """The pydantic adapter decides a body msgspec refused: refused as before, or (NaN,
    infinities, which only pydantic's parser reads) accepted as before, as the struct.
    Imported here: a child's runtime, which never comes here, holds no pydantic."""
    from pydantic import ValidationError

    try:
        model = adapter.validate_json(body)
    except ValidationError as exc:
        raise FrameInvalid(str(exc)[:300]) from None
    # builtins, not JSON: NaN and infinities stay floats (the caller's caps refuse them). A
    # struct stricter than the model would refuse here: closed, never an unexpected exception
    # (the property tests find no such body).
    try:
        return msgspec.convert(model.model_dump(), union, strict=True)
    except msgspec.ValidationError as exc:
        raise FrameInvalid(str(exc)[:300]) from None


def encode(frame: msgspec.Struct) -> bytes:
    """A frame's JSON body. TypeError for a value that is not JSON data."""
    return _ENCODER.encode(frame)


# What `encode_value` raises for data it cannot write (a lone surrogate is a ValueError).
EncodeError = (TypeError, ValueError, OverflowError, msgspec.EncodeError)


def encode_value(value: Any) -> bytes:
    """Plain JSON data (a handler's result, checked by `wirecaps.check_json_value` first) as
    JSON, as a frame holds it; one of `EncodeError` when it cannot be written."""
    return _ENCODER.encode(value)


def warm_up() -> None:
    """Decode and encode each frame type once, before the child is confined."""
    layers = Layers(seccomp=True, landlock=True, no_new_privs=True, netns=True, ipcns=True,
                    pidns=True, rlimits=True, pdeathsig=True, fds_closed=True, empty_env=True,
                    uid_dropped=True, empty_root=True)
    for h in (HostHello(v=1, token="x"),  # noqa: S106 - a dummy frame for warm-up
              Load(app_id="a", modules={"m": ""}, entry_module="m", entry_class="A",
                   settings={}),
              Event(id=1, name="e", payload={}), Exec(id=1, source=""),
              Reply(id=1, ok=False, error=WireError(code="c", message="m")), Shutdown()):
        decode_host(encode(h))
    for c in (ChildHello(v=1, token="x", layers=layers),  # noqa: S106 - a dummy frame
              Loaded(ok=True), Call(id=1, action="a", args={"k": [1, "s", None, 1.5]}),
              Done(id=1, ok=True), Log(text="x")):
        decode_child(encode(c))
