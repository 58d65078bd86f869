"""The event pump: one thread that delivers a post event to every idle app at once.

Why: delivering through each app's runner thread costs every app two thread switches (queue to
runner, Done back to the waiter) and an encoding of the same frame; with 50 apps that was
most of a fan-out's time. The pump encodes the Event once, writes it to every idle app's
channel, and waits for their Done frames together in one `epoll`.

It keeps the runners' guarantees:
- Order: the pump takes an app only when its runner has nothing queued or running
  (`AppRunner.try_claim`); later events for that app queue behind the claim.
- Isolation: the pump never waits on one child. It writes only frames that fit one atomic
  pipe write (`PIPE_BUF`) to a channel the idle child has drained, and reads only what has
  arrived (`FrameReader.try_read`). Anything but the event's Done — a bridge call, a log
  line, a broken frame, a closed channel — hands the event to the app's own runner thread,
  which finishes it exactly as if it had started it. A handler that computes for seconds
  only keeps its descriptor in the `epoll` set.
- Deadlines: armed per child like any event; the watchdog's kill ends the child, whose
  channel the pump then sees closed (readable) and hands over.
"""
from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from host.supervise.child import Child, ChildDied
from host.supervise.delivery import Delivery
from host.supervise.supervisor import Job, Resume
from host.supervise.watchdog import running_add, watchdog
from sandbox.protocol import Event
from sandbox.wire import ChannelClosed, FrameError, encode

if TYPE_CHECKING:
    from host.supervise.supervisor import AppRunner

log = logging.getLogger("stockade.pump")

_ONE_READ = select.EPOLLIN | select.EPOLLONESHOT


@dataclass
class _Flight:
    runner: AppRunner
    child: Child
    job: Job
    frame_id: int


@dataclass(frozen=True)
class _Batch:
    name: str
    payload: dict[str, Any]
    deadline_s: float
    runners: tuple[AppRunner, ...]
    jobs: tuple[Job, ...]


class EventPump:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._lock = threading.Lock()
        self._inbox: deque[_Batch] = deque()
        self._flights: dict[int, _Flight] = {}  # by the child's from_child descriptor
        self._closed = False
        # A batch taken from the inbox and being handed out (`_start`): with the inbox, what no
        # runner shows yet, so `Host.wait_idle` asks here too (`unstarted`).
        self._starting = False
        # Events finished by the pump itself, and handed to a runner (diagnostics and tests).
        self.landed = 0
        self.handed = 0
        self._thread = threading.Thread(target=self._loop, name="stockade-pump", daemon=True)
        self._thread.start()

    def deliver(self, name: str, payload: dict[str, Any], deadline_s: float,
                runners: Sequence[AppRunner], policy: object | None = None,
                payloads: Sequence[dict[str, Any]] | None = None, depth: int = 0) -> Delivery:
        """Deliver one event to `runners` (their outcomes in this order), decided under
        `policy` (`Job.policy`); `payloads`, when given, is each runner's own payload (keys
        it may not read set to None: `EventSpec.withheld`); `depth`: `Job.depth`. Never
        blocks."""
        delivery = Delivery([r.app_id for r in runners])
        if not runners:
            return delivery  # most server events have no receiver: do not wake the pump
        jobs = tuple(Job(name, payload if payloads is None else payloads[i], deadline_s,
                         delivery.slot(i), policy=policy, depth=depth)
                     for i in range(len(runners)))
        with self._lock:
            closed = self._closed
            if not closed:
                self._inbox.append(_Batch(name, payload, deadline_s, tuple(runners), jobs))
                self._wake()
        if closed:
            for runner, job in zip(runners, jobs, strict=True):
                runner.enqueue(job)
        return delivery

    def unstarted(self) -> int:
        """Events taken in that no runner shows yet (waiting in the inbox, or being handed
        out): while any is, the apps are not idle though every runner looks it."""
        with self._lock:
            return len(self._inbox) + self._starting

    def close(self) -> None:
        """Stop the pump; events in flight and later ones go through the runners."""
        with self._lock:
            self._closed = True
            self._wake()
        self._thread.join(timeout=5)
        with self._lock:
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        # under self._lock, so `close` cannot close the descriptor in between
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"\0")

    # ---- the pump thread ----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                for fd, _mask in self._epoll.poll():
                    if fd == self._wake_r:
                        if self._drain_inbox():
                            return
                    else:
                        self._readable(fd)
        except Exception:
            log.exception("event pump failed; events go through the runners from now on")
            with self._lock:
                self._closed = True
        finally:
            self._shut()

    def _drain_inbox(self) -> bool:
        """Start every waiting batch; True when the pump is closing."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while True:
            with self._lock:
                if self._closed:
                    return True
                if not self._inbox:
                    return False
                batch = self._inbox.popleft()
                self._starting = True
            try:
                self._start(batch)  # each app claimed (its runner busy) or its job queued
            finally:
                with self._lock:
                    self._starting = False

    @staticmethod
    def _frame(batch: _Batch, frame_id: int, payload: dict[str, Any]) -> bytes | None:
        try:
            frame: bytes | None = encode(Event(
                id=frame_id, name=batch.name, payload=payload).model_dump_json().encode())
        except (ValueError, FrameError):
            frame = None  # the runners refuse it with the usual error
        if frame is not None and len(frame) > select.PIPE_BUF:
            frame = None  # too big for one atomic write: the runners send it
        return frame

    def _start(self, batch: _Batch) -> None:
        frame_id = Child.next_frame_id()
        # One encoding per distinct payload: the event's own, and each receiver's with keys
        # withheld (`EventSpec.withheld`), so every app is written exactly its own job's data.
        frames: dict[int, bytes | None] = {}
        flights: list[tuple[_Flight, bytes]] = []
        deadlines: list[tuple[Child, int]] = []
        now = time.monotonic()  # one clock read for the fan-out's time in events
        for runner, job in zip(batch.runners, batch.jobs, strict=True):
            key = id(job.payload)  # held by the job for the whole fan-out: a stable key
            if key not in frames:
                frames[key] = self._frame(batch, frame_id, job.payload)
            frame = frames[key]
            # Decided again if the policy changed while the batch waited in the inbox (as a
            # runner's queue does, `Host.event_allowed`): one identity check otherwise. A
            # refused job goes to its runner, which drops it as `policy` (counted, audited);
            # written here, a reload forbidding what it carries did not stop it.
            fresh = job.policy is None or runner.host.event_allowed(
                runner.install, job.name, job.policy, job.payload)
            child = runner.try_claim() if frame is not None and fresh else None
            if child is None or frame is None:
                runner.enqueue(job)
                continue
            flights.append((_Flight(runner, child, job, frame_id), frame))
            deadlines.append((child, child.new_deadline(batch.deadline_s, now)))
        if not flights:
            return
        # One watchdog entry and one count update for the whole fan-out, before any write.
        watchdog().arm_many(deadlines, batch.deadline_s)
        running_add(len(flights))
        # Every write first, then the watches: the woken children take the cores from here on,
        # and the fewer steps between writes, the sooner the last child has its event. A Done
        # that lands before its watch is armed is reported when it is (epoll looks at once).
        begun = [flight.child.from_child for flight, frame in flights
                 if self._begin(flight, frame)]
        for fd in begun:
            self._arm(fd)

    def _begin(self, flight: _Flight, frame: bytes) -> bool:
        """Write the event to a claimed child (counted in `running_add` and armed already);
        False when the child was found dead (handed over to its runner)."""
        child = flight.child
        fd = child.from_child
        stale = self._flights.get(fd)
        if stale is not None:  # a descriptor number reused after its child was closed
            self._hand_over(fd, stale, None, ChannelClosed("channel replaced"))
        self._flights[fd] = flight
        try:
            child.begin_event(frame)
        except ChildDied:
            self._hand_over(fd, flight, None, ChannelClosed(child.death or "child died"))
            return False
        return True

    def _arm(self, fd: int) -> None:
        """Watch `fd` for one readable report (one-shot: nothing to undo when it lands)."""
        try:
            self._epoll.modify(fd, _ONE_READ)  # the usual case: watched for an earlier event
        except FileNotFoundError:
            self._epoll.register(fd, _ONE_READ)  # first event, or a new child on that number

    def _readable(self, fd: int) -> None:
        flight = self._flights.get(fd)
        if flight is None:
            return  # a one-shot report for a flight already handed over
        try:
            done, other = flight.child.poll_done(flight.frame_id)
        except (ChannelClosed, FrameError) as exc:
            self._hand_over(fd, flight, None, exc)
            return
        if other is not None:
            self._hand_over(fd, flight, other, None)
        elif done is not None:
            self._land(fd)
            self.landed += 1
            flight.runner.finish_claimed(flight.job, done)
        else:
            self._arm(fd)  # part of a frame so far: wait for the rest

    def _land(self, fd: int) -> None:
        del self._flights[fd]
        running_add(-1)

    def _hand_over(self, fd: int, flight: _Flight, raw: bytes | None,
                   failure: ChannelClosed | FrameError | None) -> None:
        if self._flights.get(fd) is flight:
            self._land(fd)
        self.handed += 1
        flight.job.resume = Resume(flight.child, flight.frame_id, raw, failure)
        flight.runner.hand_over(flight.job)

    def _shut(self) -> None:
        """Closing: every event in flight goes to its runner; later batches too."""
        for fd, flight in list(self._flights.items()):
            self._hand_over(fd, flight, None, None)
        with self._lock:
            batches, self._inbox = list(self._inbox), deque()
            self._starting = bool(batches)  # still on no runner until enqueued
        for batch in batches:
            for runner, job in zip(batch.runners, batch.jobs, strict=True):
                runner.enqueue(job)
        with self._lock:
            self._starting = False
        self._epoll.close()
