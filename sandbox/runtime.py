"""The child's main loop: handshake, load the app, run handlers, relay bridge calls.

Runs after `sandbox.confine.confine_early`; the app's identity and the last layers
(`confine.take_identity`) come with the host's hello, before any app source. The child is
single-threaded and synchronous: while a handler runs, its bridge calls go out as Call frames
and it blocks on the matching Reply. Anything unexpected from the host ends the child.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

from sandbox import confine, errors, frames
from sandbox.api import App, Context, handler_name
from sandbox.confine import CHANNEL_IN_FD, CHANNEL_OUT_FD, LayerReport
from sandbox.frames import (
    Call,
    ChildHello,
    Done,
    Event,
    Exec,
    FrameInvalid,
    HostFrame,
    HostHello,
    Layers,
    Load,
    Loaded,
    Log,
    Reply,
    Shutdown,
    WireError,
)
from sandbox.loader import LoadFailed, load_app
from sandbox.restricted import (
    CappedPrint,
    CompileFailed,
    compile_module,
    flush_prints,
    make_globals,
    reset_print_budget,
    run_module,
    set_app_modules,
)
from sandbox.wire import (
    SPIN_MIN_CPUS,
    ChannelClosed,
    FrameError,
    FrameReader,
    SpinPolicy,
    encode,
    write_all,
)
from sandbox.wirecaps import (
    MAX_MESSAGE,
    MAX_RESULT_BYTES,
    PROTOCOL_VERSION,
    check_json_value,
    result_too_large,
)

EXIT_PROTOCOL = 64  # the host sent something this child does not understand
# How long a bridge call polls for its Reply before sleeping (ns). The gate answers most calls
# within this budget, so the child is awake when the Reply lands instead of paying a
# cross-core wake-up; a slower Reply costs at most this much of the child's own CPU time
# (which counts against its RLIMIT_CPU like any other). `SpinPolicy` turns the spin off where
# it does not pay (two cores or fewer, or Replies that keep missing the budget).
REPLY_SPIN_NS = 1_000_000


class _Channel:
    def __init__(self) -> None:
        self.reader = FrameReader(CHANNEL_IN_FD, spin=True)
        self.reply_spin = SpinPolicy(REPLY_SPIN_NS)
        # After a Reply that says `spin` (the host answers a burst of this job's calls on a
        # core apart from this child's, `host/supervise/affinity.py`): poll for the next Reply
        # on any machine, still adaptive. Cleared at every new job: the hint is one job's.
        self.burst_spin = SpinPolicy(REPLY_SPIN_NS, cpus=SPIN_MIN_CPUS)
        self.host_spins = False
        self.next_id = 1
        # True only while a handler runs: the host reads a Call only within an event, so one
        # sent after its Done (a generator's `finally` run when the garbage it sits in is
        # freed) would be read as the *next* event's call, and that event would then fail.
        self.in_event = False

    def send(self, frame: frames.ChildFrame) -> None:
        self.send_json(frames.encode(frame))

    def send_json(self, body: bytes) -> None:
        """Send a frame body that is JSON already (a dumped model, or `_result_frame`'s)."""
        write_all(CHANNEL_OUT_FD, encode(body))

    def recv(self, spin_ns: int = 0) -> HostFrame:
        return frames.decode_host(self.reader.read(spin_ns), reference=False)

    # Transport for the bridges
    def call(self, action: str, args: dict[str, Any]) -> Any:
        if not self.in_event:
            raise errors.outside_handler(action)
        try:
            check_json_value(args)
        except ValueError as exc:
            raise errors.InvalidArgument(f"{action}: arguments are not plain data: {exc}") from None
        flush_prints()
        call_id = self.next_id
        try:
            self.send(Call(id=call_id, action=action, args=args))
        except FrameError as exc:  # nothing was written: the app's mistake, not the wire's
            raise errors.InvalidArgument(f"{action}: arguments too large: {exc}") from None
        self.next_id += 1
        policy = self.burst_spin if self.host_spins else self.reply_spin
        spin_ns = policy.budget()
        frame = self.recv(spin_ns)
        if spin_ns:
            policy.record(self.reader.caught)
        if not isinstance(frame, Reply) or frame.id != call_id:
            os._exit(EXIT_PROTOCOL)
        self.host_spins = frame.spin
        if frame.ok:
            return frame.result
        err = frame.error or WireError(code="internal", message="no error detail")
        raise errors.error_from_wire(err.code, err.message)


def _describe(exc: BaseException, filenames: frozenset[str]) -> WireError:
    """Capped text naming the exception and the app line it came from (no host internals)."""
    where = ""
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename in filenames:
            where = f"{frame.f_code.co_filename}:{lineno}: "
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - an app-defined __str__ may raise anything
        text = "<unprintable>"
    if isinstance(exc, errors.StockadeError):
        return WireError(code=exc.code, message=(where + text)[:MAX_MESSAGE])
    return WireError(code="app_error", message=f"{where}{type(exc).__name__}: {text}"[:MAX_MESSAGE])


def _result_frame(req_id: int, result: Any) -> bytes:
    """The Done frame's body for a handler's result; a result that is not plain JSON data
    becomes the handler's error.

    Built from a template rather than through the `Done` model: this runs once per event in
    every child, and the template saves a woken child about 4.5 µs of its ~35 µs of CPU per
    event (cold caches make pydantic's per-call work several times dearer than in a loop;
    docs/BENCH.md). The host validates the frame against `Done` as strictly as ever; a test
    holds that the two agree for any JSON result.
    """
    try:
        if result is None:  # most handlers return nothing
            return b'{"t":"done","id":%d,"ok":true,"result":null}' % req_id
        check_json_value(result)
        data = frames.encode_value(result)
    except frames.EncodeError as exc:
        return frames.encode(Done(id=req_id, ok=False, error=WireError(
            code="app_error", message=f"handler returned data that is not plain JSON: {exc}"[:500]
        )))
    if len(data) > MAX_RESULT_BYTES:  # its frame could not be sent: the handler's error
        return frames.encode(Done(id=req_id, ok=False, error=WireError(
            code="app_error", message=result_too_large(len(data)))))
    return b'{"t":"done","id":%d,"ok":true,"result":%s}' % (req_id, data)


# A sample app of our own that `prime` loads and runs once in the confined child.
_PRIME_SOURCE = (
    "from stockade import App\n\n\n"
    "class Prime(App):\n"
    "    def on_prime(self, ctx, event):\n"
    "        return [event, len(event)]\n"
)


def prime() -> None:
    """Run the child's own load and event paths once, on `_PRIME_SOURCE`, before the handshake.

    Why: a child forked from the zygote copies every page it writes, and the first compile,
    validation and handler call write a lot of them (about 0.8 ms of page copies here). Done
    while the child waits for its host (a pre-forked child waits in the host's pool), that
    cost leaves the app's start. Our own source, compiled after confinement like any other.
    """
    load = frames.decode_host(frames.encode(Load(
        app_id="prime", modules={"prime": _PRIME_SOURCE}, entry_module="prime",
        entry_class="Prime", settings={})))
    assert isinstance(load, Load)
    app = load_app(dict(load.modules), load.entry_module, load.entry_class)
    event = frames.decode_host(frames.encode(Event(id=1, name="prime", payload={"k": 1})))
    assert isinstance(event, Event)
    result = getattr(app, handler_name(event.name))(None, event.payload)
    _result_frame(event.id, result)
    set_app_modules({})


def _run_handler(chan: _Channel, method: Any, ctx: Context, frame: Event,
                 filenames: frozenset[str]) -> bytes:
    """Run one handler; its Done frame's body, built while app code may still call the host.

    A failed handler's exception is freed here, inside the event, as its `except` block ends:
    its traceback holds the handler's frames, and freeing them closes any generator they
    started, whose `finally` may call a bridge. After this returns, no app code may call
    (`_Channel.call`): garbage freed later, in a cycle, finds its calls refused."""
    chan.in_event = True
    try:
        try:
            body = _result_frame(frame.id, method(ctx, frame.payload))
        except BaseException as exc:  # noqa: BLE001 - any app failure is the app's
            body = frames.encode(Done(id=frame.id, ok=False, error=_describe(exc, filenames)))
        flush_prints()
    finally:
        chan.in_event = False
    return body


def serve(report: LayerReport) -> NoReturn:
    """Run the child's protocol until the host says shut down or the channel closes."""
    prime()
    chan = _Channel()
    try:
        _serve(chan, report)
    except (ChannelClosed, FrameError, FrameInvalid):
        pass
    os._exit(0)


def _serve(chan: _Channel, report: LayerReport) -> None:
    hello = chan.recv()
    if not isinstance(hello, HostHello) or hello.v != PROTOCOL_VERSION:
        os._exit(EXIT_PROTOCOL)
    # Now the app is known: its own uid/gid, then no-new-privs, Landlock and seccomp, before
    # the child says anything back and long before any app source arrives.
    report = confine.take_identity(report, hello.uid, hello.gid)
    layers = Layers(
        seccomp=report.seccomp, landlock=report.landlock, no_new_privs=report.no_new_privs,
        netns=report.netns, ipcns=report.ipcns, pidns=report.pidns, rlimits=report.rlimits,
        pdeathsig=report.pdeathsig,
        fds_closed=report.fds_closed, empty_env=report.empty_env,
        uid_dropped=report.uid_dropped, empty_root=report.empty_root,
        memory_cgroup=report.memory_cgroup, notes=report.notes or [],
    )
    chan.send(ChildHello(v=PROTOCOL_VERSION, token=hello.token, layers=layers))
    CappedPrint.sink = lambda text, dropped: chan.send(Log(text=text[:65536], truncated=dropped))
    app: App | None = None
    ctx: Context | None = None
    filenames: frozenset[str] = frozenset()
    while True:
        chan.host_spins = False
        frame = chan.recv()
        if isinstance(frame, Event):  # first: the frame a running child sees most
            if app is None or ctx is None:
                os._exit(EXIT_PROTOCOL)
            reset_print_budget()
            method = getattr(app, handler_name(frame.name), None)
            if method is None:
                chan.send(Done(id=frame.id, ok=True, result=None))
                continue
            chan.send_json(_run_handler(chan, method, ctx, frame, filenames))
        elif isinstance(frame, Shutdown):
            return
        elif isinstance(frame, Load):
            if app is not None:
                os._exit(EXIT_PROTOCOL)
            filenames = frozenset(f"{m}.py" for m in frame.modules)
            reset_print_budget()
            try:
                app = load_app(dict(frame.modules), frame.entry_module, frame.entry_class)
                ctx = Context(chan, frame.app_id, dict(frame.settings), frame.app_user_id)
                handlers = sorted(n for n in dir(type(app)) if n.startswith("on_"))[:64]
                flush_prints()
                chan.send(Loaded(ok=True, handlers=handlers))
            except LoadFailed as exc:
                flush_prints()
                chan.send(Loaded(ok=False, error=WireError(code="load_failed",
                                                           message=str(exc)[:MAX_MESSAGE])))
            except BaseException as exc:  # noqa: BLE001 - app code ran at import time
                flush_prints()
                chan.send(Loaded(ok=False, error=_describe(exc, filenames)))
        elif isinstance(frame, Exec):
            reset_print_budget()
            filenames = frozenset({"snippet.py"})
            try:
                code = compile_module(frame.source, "snippet.py")
                run_module(code, make_globals("__main__"))
                flush_prints()
                chan.send(Done(id=frame.id, ok=True))
            except CompileFailed as exc:
                chan.send(Done(id=frame.id, ok=False, error=WireError(
                    code="compile_error", message=str(exc)[:MAX_MESSAGE])))
            except BaseException as exc:  # noqa: BLE001
                flush_prints()
                chan.send(Done(id=frame.id, ok=False, error=_describe(exc, filenames)))
        else:
            os._exit(EXIT_PROTOCOL)


def warm_up() -> None:
    """Import and exercise everything the child will need once confined (it can open no file)."""
    import importlib

    # imported lazily by datetime.strptime and by str.encode: load them while files can be read
    for name in ("_strptime", "encodings.idna", "encodings.utf_8"):
        importlib.import_module(name)

    for _ in range(16):
        _warm_once()


def _warm_once() -> None:
    frames.warm_up()
    code = compile_module(
        "import math, json, re, datetime, stockade\n"
        "class A(stockade.App):\n    def on_x(self, ctx, e):\n        return [1]\n"
        "x = f'{1!r}' + '%s' % 2\nprint(x)\n"
        "re.compile('a+').match('aa')\njson.loads(json.dumps({'a': [1.5]}))\n"
        "datetime.datetime.strptime('2024', '%Y')\n",
        "warmup.py",
    )
    sink, CappedPrint.sink = CappedPrint.sink, None
    run_module(code, make_globals("warmup"))
    flush_prints()
    CappedPrint.sink = sink
    reset_print_budget()
    sys.stdout.flush()
