"""Frame bodies exchanged between the host and a child, validated strictly on both ends.

Only data crosses: no pickle, no callables, no host exception objects (DESIGN rule 6). Errors
travel as `{code, message}`. Identity is the channel itself (rule 1): no frame names an app, an
install or a user on whose behalf to act.

Host -> child: HostHello, Load, Event, Exec, Reply, Shutdown.
Child -> host: ChildHello, Loaded, Call, Done, Log.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sandbox.wirecaps import MAX_LOG, MAX_MESSAGE, MAX_NAME

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[a-z][a-z0-9_.-]*$")]
# Request ids stay below 2**53, so every JSON reader holds them exactly (a double's mantissa).
MAX_REQUEST_ID = 1 << 53
RequestId = Annotated[int, Field(ge=1, lt=MAX_REQUEST_ID)]


class WireError(BaseModel):
    model_config = _STRICT
    code: Annotated[str, Field(max_length=MAX_NAME)]
    message: Annotated[str, Field(max_length=MAX_MESSAGE)]


# ---- host -> child -------------------------------------------------------------------------


class HostHello(BaseModel):
    """First frame: the protocol version and the capability token for this channel."""

    model_config = _STRICT
    t: Literal["hello"] = "hello"
    v: int
    token: Annotated[str, Field(max_length=4096)]
    # The app's own uid/gid when the host is root (`host/supervise/identities.py`); never 0.
    uid: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    gid: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class Load(BaseModel):
    """App source to compile inside the (already confined) child."""

    model_config = _STRICT
    t: Literal["load"] = "load"
    app_id: Name
    app_user_id: Annotated[str, Field(max_length=64)] | None = None
    modules: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=1 << 19)]]
    entry_module: Annotated[str, Field(max_length=64)]
    entry_class: Annotated[str, Field(max_length=64)]
    settings: dict[str, Any]


class Event(BaseModel):
    """Deliver one event (or lifecycle hook) to the app's handler."""

    model_config = _STRICT
    t: Literal["event"] = "event"
    id: RequestId
    name: Name
    payload: dict[str, Any]


class Exec(BaseModel):
    """Run one restricted-Python snippet with no app around it (`stockade sandbox exec`)."""

    model_config = _STRICT
    t: Literal["exec"] = "exec"
    id: RequestId
    source: Annotated[str, Field(max_length=1 << 20)]


class Reply(BaseModel):
    """The gate's answer to one bridge call."""

    model_config = _STRICT
    t: Literal["reply"] = "reply"
    id: RequestId
    ok: bool
    result: Any = None
    error: WireError | None = None
    # The host's hint that it answers this child's calls on a core of its own and polls for
    # the next one (a burst of calls: host/supervise/affinity.py): poll for the next Reply too.
    spin: bool = False


class Shutdown(BaseModel):
    model_config = _STRICT
    t: Literal["shutdown"] = "shutdown"


HostFrame = Annotated[HostHello | Load | Event | Exec | Reply | Shutdown, Field(discriminator="t")]

# ---- child -> host -------------------------------------------------------------------------


class Layers(BaseModel):
    """Which confinement layers the child applied to itself before reading any app source."""

    model_config = _STRICT
    seccomp: bool
    landlock: bool
    no_new_privs: bool
    netns: bool
    ipcns: bool
    pidns: bool = False  # absent in an older child's report: missing, never assumed
    rlimits: bool
    pdeathsig: bool
    fds_closed: bool
    empty_env: bool
    uid_dropped: bool
    empty_root: bool = False  # absent in an older child's report: missing, never assumed
    memory_cgroup: bool = False  # likewise
    notes: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=16)


class ChildHello(BaseModel):
    """The child's answer to HostHello: it presents the token it was given, and its layers."""

    model_config = _STRICT
    t: Literal["hello"] = "hello"
    v: int
    token: Annotated[str, Field(max_length=4096)]
    # The app's own uid/gid when the host is root (`host/supervise/identities.py`); never 0.
    uid: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    gid: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    layers: Layers


class Loaded(BaseModel):
    model_config = _STRICT
    t: Literal["loaded"] = "loaded"
    ok: bool
    handlers: list[Name] = Field(default_factory=list, max_length=64)
    error: WireError | None = None


class Call(BaseModel):
    """One bridge call. The action names what to do; nothing names who asks (the channel does)."""

    model_config = _STRICT
    t: Literal["call"] = "call"
    id: RequestId
    action: Name
    args: dict[str, Any]


class Done(BaseModel):
    """The outcome of one Event or Exec."""

    model_config = _STRICT
    t: Literal["done"] = "done"
    id: RequestId
    ok: bool
    result: Any = None
    error: WireError | None = None


class Log(BaseModel):
    """Captured print() output (the child's stdout is not the channel)."""

    model_config = _STRICT
    t: Literal["log"] = "log"
    text: Annotated[str, Field(max_length=MAX_LOG)]
    truncated: bool = False


ChildFrame = Annotated[ChildHello | Loaded | Call | Done | Log, Field(discriminator="t")]

# The child decodes every host frame with this adapter. pydantic's JSON string cache is off:
# in a child forked from the zygote the first decode would otherwise map and fill a fresh
# 256 KiB cache, a quarter of a MiB of private memory per idle app (docs/BENCH.md), to save
# allocating a few short keys per frame.
HOST_FRAME: TypeAdapter[HostHello | Load | Event | Exec | Reply | Shutdown] = TypeAdapter(
    HostFrame, config=ConfigDict(cache_strings=False))
CHILD_FRAME: TypeAdapter[ChildHello | Loaded | Call | Done | Log] = TypeAdapter(ChildFrame)


def warm_up() -> None:
    """Exercise every model once so lazy imports happen before the child is confined."""
    layers = Layers(seccomp=True, landlock=True, no_new_privs=True, netns=True, ipcns=True,
                    pidns=True, rlimits=True, pdeathsig=True, fds_closed=True, empty_env=True,
                    uid_dropped=True, empty_root=True)
    for frame in (
        HostHello(v=1, token="x"),  # noqa: S106 - a dummy frame for warm-up
        Load(app_id="a", modules={"m": ""}, entry_module="m", entry_class="A", settings={}),
        Event(id=1, name="e", payload={}),
        Exec(id=1, source=""),
        Reply(id=1, ok=False, error=WireError(code="c", message="m")),
        Shutdown(),
    ):
        HOST_FRAME.validate_json(frame.model_dump_json())
    for cframe in (
        ChildHello(v=1, token="x", layers=layers),  # noqa: S106 - a dummy frame for warm-up
        Loaded(ok=True),
        Call(id=1, action="a", args={"k": [1, "s", None, 1.5, {"x": True}]}),
        Done(id=1, ok=True, result=None),
        Log(text="x"),
    ):
        CHILD_FRAME.validate_json(cframe.model_dump_json())
