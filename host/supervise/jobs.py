"""A runner's jobs: what one queued event, hook or control step carries, and how it is settled.

Apart from `supervisor` so the runner's module stays small; `supervisor` re-exports `Job`,
`Resume` and `EventDropped`, which the pump, the runtime and the tests import from there.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from host.server.events import writing_cause
from host.supervise.child import Child
from host.supervise.delivery import Outcome
from sandbox.wire import ChannelClosed, FrameError

# What a full queue gives up, per event. "drop_oldest": the event waiting longest is dropped, so
# the app works on what is happening now — a conversation that started or was assigned a
# minute ago has been served or routed by someone else meanwhile. "refuse": the new event is
# dropped and the queued ones kept, for events whose order an integration reconciles against
# (a CRM that saw a room start needs its close; dropping the oldest close would leave an older
# conversation open forever, dropping the newest leaves one recent close for the operator to
# replay from the drop summary). Events not listed drop oldest.
OVERFLOW_POLICY: dict[str, str] = {
    "livechat.room_started": "drop_oldest",
    "livechat.agent_assigned": "drop_oldest",
    "livechat.room_transferred": "drop_oldest",
    "message.sent": "drop_oldest",
    "livechat.room_closed": "refuse",
    "livechat.agent_unassigned": "refuse",
    "livechat.guest_saved": "refuse",
}


class EventDropped(RuntimeError):
    """An event that never reached the app: its queue was full or it waited too long."""


def overflow_policy(event: str) -> str:
    return OVERFLOW_POLICY.get(event, "drop_oldest")


@dataclass(frozen=True)
class Resume:
    """An event the pump started on `child` and hands over: its next frame or channel failure."""

    child: Child
    frame_id: int
    raw: bytes | None
    failure: ChannelClosed | FrameError | None


@dataclass
class Job:
    name: str
    payload: dict[str, Any]
    deadline_s: float
    outcome: Outcome = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    resume: Resume | None = None
    # Set on a pre-send hook's job only (`AppRunner.submit_urgent`): it runs ahead of the
    # app's queued events, `started` is set once it reaches the child (or is settled without
    # running), and its outcome is a Future its caller cancels when it gives up waiting for
    # the start: a cancelled job is dropped, never run on a message already decided.
    started: threading.Event | None = None
    # The policy object its receivers were decided under (`Host.dispatch`, or a pre-send
    # hook's turn); None for a job submitted directly (a lifecycle hook, a bench's loop).
    # Taken under another, it is decided again.
    policy: object | None = None
    # How many app-handled events led to this one (0: a person's or the system's action); the
    # app's writes while it handles this job raise events one deeper (`host.server.events.Cause`,
    # set by the runner). Set by the host from the write that raised the event, never by an app.
    depth: int = 0


STOP = Job("__stop__", {}, 0.0)


def control(job: Job) -> bool:
    """A start or stop job: never dropped, never counted as an event."""
    return job is STOP or job.name.startswith("__")


def urgent_call(name: str, payload: dict[str, Any], deadline_s: float, policy: object | None
                ) -> tuple[Job, Future[Any], threading.Event]:
    """A pre-send hook's job (decided under `policy`), its outcome and its start signal. The
    signal is also set when the outcome settles, so a caller waiting for the start never waits
    on a job that failed."""
    future: Future[Any] = Future()
    started = threading.Event()
    future.add_done_callback(lambda _f: started.set())
    # The hook judges a message being written now, on this thread: its depth is that write's,
    # so a message the hook sends in turn is one deeper.
    job = Job(name, payload, deadline_s, future, started=started, policy=policy,
              depth=writing_cause().depth)
    return job, future, started


def begin(job: Job) -> bool:
    """Mark a pre-send job as running, right before its hook reaches the child; False when its
    caller gave up first (`Future.cancel`, atomic with this): then it must not run."""
    if job.started is None:
        return True
    outcome = job.outcome
    assert isinstance(outcome, Future)
    if outcome.cancelled() or not outcome.set_running_or_notify_cancel():
        return False
    job.started.set()  # the hook's deadline counts from here, on the caller's side too
    return True


def settle_failed(job: Job, exc: BaseException) -> None:
    """Fail `job`'s outcome, unless its caller gave up on it (a cancelled pre-send job): then
    there is no one to tell, and a Future refuses a second state."""
    outcome = job.outcome
    if job.started is not None:
        assert isinstance(outcome, Future)
        if outcome.cancelled():
            return
        if not outcome.running() and not outcome.set_running_or_notify_cancel():
            return  # cancelled just now
    outcome.set_exception(exc)


def untraced(exc: BaseException) -> BaseException:
    """`exc` without its traceback, before it goes into the job's outcome. The traceback holds
    this runner's frame, whose `job` holds the outcome that would hold `exc`: a reference cycle
    per failed event, which only the cyclic collector frees (issue 26's soak found thousands of
    failed events' deliveries, payloads and frames waiting for a full collection)."""
    return exc.with_traceback(None)
