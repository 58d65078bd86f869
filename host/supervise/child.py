"""One running, confined app child as the host sees it: its channel, its deadline, its death.

There is no reader thread per child: the thread that delivers an event reads the child's
frames until the event is done, answering bridge calls inline through the gate. A child can
only speak while the host is listening (a Call outside an event is a protocol violation), so
a hostile child cannot make the host do work on its own schedule. Deadlines are enforced by
one watchdog thread that kills the child; the blocked reader then sees the channel close.
Between events no deadline runs: the host's upkeep round kills a child whose CPU time grows
past the time it spent in events (`busy_time`, `watchdog.IdleWatch`).

How a child fails (`ChildDied`, `AppFailed`, ...) is `host.supervise.failures`, and the answer
to one bridge call `host.supervise.bridgereply`; both are re-exported here.
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from host.errors import GateError
from host.supervise.bridgereply import answer, reply_frame

# Re-exported: the host and the tests import these from here, where they were first defined.
from host.supervise.failures import AppFailed as AppFailed
from host.supervise.failures import ChildDied as ChildDied
from host.supervise.failures import LayerMissing as LayerMissing
from host.supervise.failures import describe_status as describe_status
from host.supervise.failures import done_result as done_result
from host.supervise.logcap import LogBudget, LogSink
from host.supervise.procfs import children_of, runs_as
from host.supervise.watchdog import running_events, watchdog
from sandbox import frames
from sandbox.frames import Call, ChildHello, Done, FrameInvalid, Loaded, Log, Reply, WireError
from sandbox.protocol import MAX_REQUEST_ID, Event, Exec, HostHello, Layers, Load, Shutdown
from sandbox.wire import (
    SPIN_MIN_CPUS,
    ChannelClosed,
    FrameError,
    FrameReader,
    SpinPolicy,
    encode,
    try_write,
    write_all,
)
from sandbox.wirecaps import PROTOCOL_VERSION

if TYPE_CHECKING:
    from host.supervise.memcg import MemoryCgroups

# What a child may print to stderr that the host keeps (interpreter crash text only).
MAX_STDERR_KEPT = 4096
# Bridge calls one event may make: bounds a request flood to a fixed amount of gate work.
MAX_CALLS_PER_EVENT = 10_000
HANDSHAKE_TIMEOUT_S = 5.0
LOAD_TIMEOUT_S = 10.0
# After answering a bridge call, how long the host polls for the handler's next frame before
# sleeping (ns); see `sandbox.wire`. Only while no other event is running in this host: a
# polling thread keeps taking the GIL back, which would delay the other runners' gate work.
# Each child's `SpinPolicy` also turns it off where it does not pay (two cores or fewer, or a
# handler whose next frame keeps missing the budget).
NEXT_FRAME_SPIN_NS = 150_000

log = logging.getLogger("stockade.child")


REQUIRED_LAYERS = ("seccomp", "landlock", "no_new_privs", "netns", "ipcns", "pidns", "rlimits",
                   "pdeathsig", "fds_closed", "empty_env", "empty_root")


@dataclass(frozen=True)
class ChildLimits:
    memory_mib: int = 256
    cpu_seconds: int = 3600
    max_fds: int = 32

    def as_dict(self) -> dict[str, int]:
        return {"memory_mib": self.memory_mib, "cpu_seconds": self.cpu_seconds,
                "max_fds": self.max_fds}


CallHandler = Callable[["Child", str, dict[str, Any]], Any]
# Refuses a Call whose args broke the caps: (child, action, args, what broke, the Call frame's
# bytes) -> the error to answer with, audited and charged by the gate (`host.gate.overcaps`).
ArgsRefusal = Callable[["Child", str, dict[str, Any], str, bytes], Exception]


@dataclass
class Child:
    pid: int
    session_id: str
    to_child: int
    from_child: int
    err_fd: int
    popen: subprocess.Popen[bytes] | None = None
    # A zygote's child where the kernel gives no pidfd: how to kill it (its parent, the
    # zygote, signals it; the host may not by pid, a reaped number can be reused).
    kill_by_parent: Callable[[], None] | None = None
    # The memory cgroup this child was made to join (`host.supervise.memcg`), and the host's
    # set it belongs to; None where the host cannot make cgroups (the layer is not required).
    memory_cgroups: MemoryCgroups | None = None
    memory_cgroup: str | None = None
    reader: FrameReader = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ticket: int = 0
    deadline_s: float = 0.0
    # Wall time spent in events (handshake, load, snippets too), each from `new_deadline` to
    # `_disarm`; `busy_since`: the running one's start. CPU beyond it was spent between events.
    busy_s: float = 0.0
    busy_since: float | None = None
    death_reported: bool = False  # its runner audited the death already (the idle watch)
    dead: bool = False
    death: str = ""
    death_code: str = "child_died"
    exit_status: int | None = None
    layers: Layers | None = None
    # Required layers this child's handshake found missing (only ever non-empty under
    # --degraded): the host audits them for the app (`host.runtime.Host.start_child`).
    missing_layers: tuple[str, ...] = ()
    handlers: tuple[str, ...] = ()
    logs_cut: int = 0  # events and loads whose log output passed the host's cap (`logcap`)
    # Set by the app's runner (`AppRunner._ensure_child`): how a Call whose args break the caps
    # is refused (audited and charged, as every refusal). None where no app runs (`sandbox
    # exec`, tests): the refusal is then the reply alone, there being no install to charge.
    refuse_args: ArgsRefusal | None = None
    _pidfd: int = -1
    _exited: threading.Event = field(default_factory=threading.Event)
    # Orders `kill` (any thread) against `close` (the owner): a kill never signals through a
    # pidfd number that `close` freed and another child's pidfd may have taken.
    _fd_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reader = FrameReader(self.from_child, spin=True)
        self.next_frame_spin = SpinPolicy(NEXT_FRAME_SPIN_NS)
        # A burst whose pair is pinned to cores apart (`AppRunner`, `affinity.Affinity.burst`):
        # while its event is the only one running, this thread polls for the child's next
        # call on any machine and tells the child to poll for its Reply (`Reply.spin`): each
        # end on a core of its own, neither hand-off sleeps.
        self.burst_apart = False
        self.burst_frame_spin = SpinPolicy(NEXT_FRAME_SPIN_NS, cpus=SPIN_MIN_CPUS)
        # Non-blocking, for the pump's `begin_event`; `write_all` waits for room itself.
        os.set_blocking(self.to_child, False)
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(self.pid)

    # ---- sending and receiving -------------------------------------------------------------

    def _send(self, frame: Any) -> None:
        try:
            write_all(self.to_child, encode(frame.model_dump_json().encode()))
        except (BrokenPipeError, OSError) as exc:
            self._dead_after_io()
            raise ChildDied(self.death or f"channel closed: {exc}", self.death_code) from exc

    def _read(self, spin_ns: int = 0) -> bytes:
        try:
            return self.reader.read(spin_ns)
        except (ChannelClosed, FrameError) as exc:
            self._channel_failed(exc)

    def _decode(self, raw: bytes) -> Any:
        try:
            frames.check_child_structure(raw)  # before any value is built (`frames`)
            return frames.decode_child(raw)
        except FrameInvalid as exc:
            self.kill(f"protocol violation: {str(exc)[:300]}", code="protocol")
            raise ChildDied(self.death, self.death_code) from None

    def _channel_failed(self, exc: ChannelClosed | FrameError) -> NoReturn:
        if isinstance(exc, ChannelClosed):
            self._dead_after_io()
            raise ChildDied(self.death or "child closed its channel", self.death_code) from None
        self.kill(f"protocol violation: {str(exc)[:300]}", code="protocol")
        raise ChildDied(self.death, self.death_code) from None

    def _dead_after_io(self) -> None:
        if not self.death and self.memory_cgroups is not None and self.memory_cgroup is not None:
            # Its cgroup says at once whether its memory limit killed it (the OOM kill is
            # counted before the process is gone), where the exit status would come later.
            if self.memory_cgroups.oom_killed(self.memory_cgroup):
                self._memory_death(signal.SIGKILL)
        if not self.death:
            # The channel closed on its own: wait briefly for the exit status to say why.
            self._exited.wait(0.5)
            if not self.death:  # `exited` names a death by the memory limit itself
                self.death = describe_status(self.exit_status) if (
                    self.exit_status is not None) else "child exited"
                self.death_code = "crashed"
        self.kill(self.death, self.death_code)

    # ---- lifecycle -------------------------------------------------------------------------

    def app_pid(self) -> int:
        """The process running the app: a spawned child forks it into a PID namespace of its
        own and stays behind as a stand-in (`sandbox.child`); a zygote's child is it."""
        if self.popen is None:
            return self.pid
        kids = children_of(self.pid)
        return kids[0] if len(kids) == 1 else self.pid

    def handshake(self, token: str, verify: Callable[[str], None], *, degraded: bool,
                  uid: int | None = None) -> Layers:
        """Send the token (and the app's own uid when the host is root), read it back with the
        layer report; refuse missing layers. A child given a uid must be seen by the kernel to
        run as it (`/proc/<pid>/status`), whatever its report says."""
        self._arm(HANDSHAKE_TIMEOUT_S)
        try:
            self._send(HostHello(v=PROTOCOL_VERSION, token=token, uid=uid, gid=uid))
            hello = self._decode(self._read())
        finally:
            self._disarm()
        if not isinstance(hello, ChildHello) or hello.v != PROTOCOL_VERSION:
            self.kill("bad handshake", code="protocol")
            raise ChildDied("bad handshake", "protocol")
        verify(hello.token)
        # the reference model from here on (the doctor and the demo dump it); not a hot path
        layers = Layers.model_validate(msgspec.structs.asdict(hello.layers))
        missing = [name for name in REQUIRED_LAYERS if not getattr(layers, name)]
        if uid is not None and not (layers.uid_dropped and runs_as(self.app_pid(), uid)):
            missing.append("uid_dropped")
        # Required where the host made the child a cgroup: the kernel must show it there.
        if self.memory_cgroups is not None and not (
                layers.memory_cgroup and self.memory_cgroup is not None
                and self.memory_cgroups.holds(self.app_pid(), self.memory_cgroup)):
            missing.append("memory_cgroup")
        if missing and not degraded:
            self.kill("confinement layer missing", code="confinement")
            raise LayerMissing(
                "refusing to run apps: confinement layer(s) missing on this machine: "
                + ", ".join(missing)
                + ". Start the host with --degraded to run anyway (not recommended)."
            )
        if missing:
            # Never silent: --degraded is also how a host restarts after a broken audit chain,
            # so an operator may have passed it for that alone and not know a wall is gone.
            log.warning("child %d runs with confinement layer(s) missing (--degraded): %s",
                        self.pid, ", ".join(missing))
        self.missing_layers = tuple(missing)
        self.layers = layers
        return layers

    def load(self, app_id: str, modules: dict[str, str], entry_module: str, entry_class: str,
             settings: dict[str, Any], on_log: LogSink,
             app_user_id: str | None = None) -> tuple[str, ...]:
        budget = LogBudget(on_log, "load")
        with self.lock:
            self._arm(LOAD_TIMEOUT_S)
            try:
                self._send(Load(app_id=app_id, app_user_id=app_user_id, modules=modules,
                                entry_module=entry_module, entry_class=entry_class,
                                settings=settings))
                while True:
                    frame = self._decode(self._read())
                    if isinstance(frame, Log):
                        self._heard(budget, frame)
                        continue
                    if not isinstance(frame, Loaded):
                        self.kill("unexpected frame during load", code="protocol")
                        raise ChildDied(self.death, self.death_code)
                    break
            finally:
                self._disarm()
                self._log_done(budget)
        if not frame.ok:
            err = frame.error or WireError(code="load_failed", message="load failed")
            self.kill("app failed to load", code="load_failed")
            raise ChildDied(f"{err.code}: {err.message}", "load_failed")
        self.handlers = tuple(frame.handlers)
        return self.handlers

    def deliver(self, name: str, payload: dict[str, Any], deadline_s: float,
                on_call: CallHandler, on_log: LogSink) -> Any:
        """Run one handler to completion under a deadline; answer its bridge calls inline."""
        with self.lock:
            return self._run(Event(id=self.next_frame_id(), name=name, payload=payload),
                             deadline_s, on_call, on_log)

    def exec_source(self, source: str, deadline_s: float, on_log: LogSink) -> Any:
        with self.lock:
            return self._run(Exec(id=self.next_frame_id(), source=source), deadline_s,
                             _no_calls, on_log)

    @staticmethod
    def next_frame_id() -> int:
        """A fresh frame id for one request (one fan-out shares one).

        Drawn at random, not counted: a counter shared by every child told an escaped app,
        from the gap between two of its own events, how many events and snippets the host had
        sent to other apps meanwhile (those it holds no grant for included). From a CSPRNG, so
        the ids it sees do not let it rebuild a generator's state and count the draws it
        missed. A repeat within one child's conversation is a 2**-53 chance per request.
        """
        return secrets.randbelow(MAX_REQUEST_ID - 1) + 1

    def _run(self, frame: Event | Exec, deadline_s: float, on_call: CallHandler,
             on_log: LogSink) -> Any:
        if self.dead:
            raise ChildDied(self.death, self.death_code)
        self._arm(deadline_s)
        running_events.add(1)
        # a snippet's output is unstamped (`logcap.LogBudget`): no line cap for an Exec
        budget = LogBudget(on_log, max_lines=sys.maxsize) if isinstance(frame, Exec) else (
            LogBudget(on_log))
        try:
            self._send(frame)
            return self._converse(frame.id, self._read(), on_call, budget)
        finally:
            running_events.add(-1)
            self._disarm()
            self._log_done(budget)

    def _heard(self, budget: LogBudget, frame: Log) -> None:
        """One Log frame into the event's (or load's) budget; a flood (`logcap.LOG_FLOOD_*`)
        kills the child, which only code that escaped its runtime can send."""
        budget(frame.text, frame.truncated)
        if budget.flooding:
            self.kill(f"log flood: {budget.frames} Log frames, {budget.received} characters in "
                      "one event (more than the app's runtime ever sends)", code="flood")
            raise ChildDied(self.death, self.death_code)

    def _log_done(self, budget: LogBudget) -> None:
        """An event or load is over: its log drop, if any, is noted and counted."""
        if budget.close():
            self.logs_cut += 1

    def _send_reply(self, reply: Reply) -> None:
        """Send a bridge reply (`bridgereply.reply_frame`: one too large for a frame goes as an
        error the app sees)."""
        try:
            write_all(self.to_child, reply_frame(reply))
        except OSError as exc:
            self._dead_after_io()
            raise ChildDied(self.death or f"channel closed: {exc}", self.death_code) from exc

    def _converse(self, frame_id: int, raw: bytes, on_call: CallHandler,
                  on_log: LogBudget) -> Any:
        """Serve a running handler from its frame `raw` on, until its Done; its Log frames go
        through the event's `LogBudget`, the host's cap (the child's own is no rule)."""
        calls = 0
        policy = self.next_frame_spin
        while True:
            msg = self._decode(raw)
            spin = 0  # nothing to poll for until a Reply went out (the handler then runs)
            if isinstance(msg, Call):
                calls += 1
                if calls > MAX_CALLS_PER_EVENT:
                    self.kill(f"more than {MAX_CALLS_PER_EVENT} bridge calls in one event",
                              code="flood")
                    raise ChildDied(self.death, self.death_code)
                alone = running_events.count == 1
                self._send_reply(self._answer(msg, raw, on_call,
                                              spin=alone and self.burst_apart))
                if self.dead:
                    # Killed meanwhile (its refusal budget, its deadline): serve it no more. A
                    # spawned child's app dies a moment after its stand-in (its parent-death
                    # signal), long enough to send more calls and even its Done.
                    raise ChildDied(self.death, self.death_code)
                if alone:
                    policy = self.burst_frame_spin if self.burst_apart else self.next_frame_spin
                    spin = policy.budget()
            elif isinstance(msg, Log):
                self._heard(on_log, msg)
            elif isinstance(msg, Done) and msg.id == frame_id:
                return done_result(msg)
            else:
                self.kill("response to a request never made", code="protocol")
                raise ChildDied(self.death, self.death_code)
            raw = self._read(spin)
            if spin:
                policy.record(self.reader.caught)

    # ---- the event pump's path (host.supervise.pump): send without waiting, read what arrived ---

    def begin_event(self, frame: bytes) -> None:
        """Write an encoded Event of at most PIPE_BUF bytes, not waiting. The caller has armed
        its deadline already (`new_deadline`, then `Watchdog.arm_many`).

        An idle child has drained its channel, so the write always fits; when it does not, the
        child is not reading what the host sends (only code that escaped the runtime can do
        that), and it is killed rather than allowed to stall the pump's thread.
        """
        if self.dead:
            raise ChildDied(self.death, self.death_code)
        try:
            sent = try_write(self.to_child, frame)
        except OSError:
            sent = False
        if not sent:
            self.kill("child does not read its channel", code="protocol")
            raise ChildDied(self.death, self.death_code)

    def poll_done(self, frame_id: int) -> tuple[Done | None, bytes | None]:
        """What has arrived: (Done for `frame_id`, None), (None, other frame) or (None, None).

        Raises ChannelClosed or FrameError for `resume_event` to turn into the child's death
        (deciding why a child died can wait for its exit status: not on the pump's thread).
        """
        raw = self.reader.try_read()
        if raw is None:
            return None, None
        with contextlib.suppress(FrameInvalid):  # the runner refuses it (`_decode`)
            frames.check_child_structure(raw)
            msg = frames.decode_child(raw)
            if isinstance(msg, Done) and msg.id == frame_id:
                self._disarm()
                return msg, None
        return None, raw

    def resume_event(self, frame_id: int, raw: bytes | None,
                     failure: ChannelClosed | FrameError | None, on_call: CallHandler,
                     on_log: LogSink) -> Any:
        """Take over an event the pump started: its next frame `raw`, or its channel failure."""
        with self.lock:
            running_events.add(1)
            budget = LogBudget(on_log)  # the pump hands over at the first Log: nothing before
            try:
                if failure is not None:
                    self._channel_failed(failure)
                return self._converse(frame_id, raw if raw is not None else self._read(),
                                      on_call, budget)
            finally:
                running_events.add(-1)
                self._disarm()
                self._log_done(budget)

    def _answer(self, call: Call, raw: bytes, on_call: CallHandler, *,
                spin: bool = False) -> Reply:
        """`call`'s Reply; `raw` is its frame as read, what a refusal of its args digests."""
        return answer(self, call, raw, on_call, self.refuse_args, spin=spin)

    def _arm(self, seconds: float) -> None:
        watchdog().arm(self, seconds, self.new_deadline(seconds))

    def new_deadline(self, seconds: float, now: float | None = None) -> int:
        """Start a deadline period of `seconds` (at `now`, a fan-out's one clock read); its
        ticket, for the caller to arm the watchdog with (`Watchdog.arm_many`)."""
        self.deadline_s = seconds
        self.ticket += 1
        if self.busy_since is None:
            self.busy_since = time.monotonic() if now is None else now
        return self.ticket

    def _disarm(self) -> None:
        self.ticket += 1
        since, self.busy_since = self.busy_since, None
        if since is not None:
            self.busy_s += time.monotonic() - since

    def busy_time(self) -> float:
        """Seconds spent in events so far, the one running now included (any thread)."""
        # `busy_since` read first: a `_disarm` between the reads counts its event twice, not 0.
        since, total = self.busy_since, self.busy_s
        return total + (time.monotonic() - since if since is not None else 0.0)

    def kill(self, reason: str, code: str = "killed") -> None:
        """Kill the child (safe to call twice, from any thread, before or after `close`).

        Only a signal: no descriptor is closed here. Another thread may be blocked writing to
        the channel (a Reply or an Event bigger than the pipe, to a child that stopped
        reading); closing its number would let the next file the host opens take it, and the
        woken write would send the rest of the frame, app-controlled bytes, into that file.
        The write fails on its own (EPIPE) once the child is gone; the owner then `close`s.
        """
        if not self.dead:
            self.dead = True
            self.death = reason
            self.death_code = code
        with self._fd_lock:
            if self._pidfd >= 0:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            elif self.popen is not None:
                with contextlib.suppress(OSError):
                    self.popen.kill()
            elif self.kill_by_parent is not None and not self._exited.is_set():
                self.kill_by_parent()

    def shutdown(self, timeout: float = 1.0) -> None:
        """Ask the child to end, wait up to `timeout`, then kill it and close. Never waits for
        room: an idle child has drained its channel, so only one that stopped reading (an
        escape that filled the pipe with the host's own Replies) finds it full, and it is
        killed at once instead of holding the caller (`sandbox exec`) forever."""
        if not self.dead:
            try:
                sent = try_write(self.to_child, encode(Shutdown().model_dump_json().encode()))
            except OSError:
                sent = False
            if sent:
                self._exited.wait(timeout)
        self.kill("shut down", code="shutdown")
        self.close()

    def close(self) -> None:
        """Free the child's descriptors. Only for their owner: the thread that reads and writes
        the channel (the runner, the start path, `sandbox exec`), once it is done with it, or
        code that knows no thread uses the child (a pooled child never handed out)."""
        with self._fd_lock:
            for fd in (self.to_child, self.from_child, self.err_fd, self._pidfd):
                with contextlib.suppress(OSError):
                    if fd >= 0:
                        os.close(fd)
            self.to_child = self.from_child = self.err_fd = self._pidfd = -1
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(1.0)

    def exited(self, status: int, *, memory_limit: bool = False) -> None:
        """The child was reaped with wait `status`; `memory_limit`: the kernel's OOM killer
        killed it in its own memory cgroup, a limit death of the app's own (never the host's:
        `restarts.NOT_THE_APPS` does not hold "memory_limit"). A death first read from the
        closed channel as a crash (`_dead_after_io`) is named for the limit once known."""
        if memory_limit and (not self.death or self.death_code == "crashed"):
            self._memory_death(status)
        self.exit_status = status
        self._exited.set()

    def _memory_death(self, status: int) -> None:
        self.death = ("child killed: memory limit (its memory cgroup's OOM kill, "
                      f"{describe_status(status)})")
        self.death_code = "memory_limit"

    def has_exited(self) -> bool:
        return self._exited.is_set()

    def stderr_text(self) -> str:
        """What the child wrote to stderr (interpreter crash text), capped."""
        if self.err_fd < 0:
            return ""
        os.set_blocking(self.err_fd, False)
        try:
            data = os.read(self.err_fd, MAX_STDERR_KEPT)
        except (BlockingIOError, OSError):
            return ""
        # A character the cap cut in two is left out, not replaced by U+FFFD: the host masks a
        # secret value's start at the text's end (`logmask.masked_to_the_end`), which a
        # replacement character hid ("p\u00e4ssw\u00f6rd-\ufffd" kept the value's start).
        return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


def _no_calls(child: Child, action: str, args: dict[str, Any]) -> Any:
    raise GateError("permission_denied",
                    f"{action}: this sandbox has no permissions (no app, no grants)")
