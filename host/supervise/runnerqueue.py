"""An app runner's queue: the events and pre-send jobs waiting for its thread, each event's
overflow policy when the queue is full, the events a restart hands on to the runner the app
continues in, and the drops counted on the way (`drops.py`).

`supervisor.AppRunner` is built on it (its state set in `AppRunner.__init__`), with the thread
that runs the jobs, the child and its deaths.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from host.apps.installs import InstallRecord
from host.supervise.drops import Drops
from host.supervise.jobs import Job, overflow_policy, settle_failed, urgent_call
from host.supervise.jobs import control as _control
from host.supervise.succession import Succession
from policies.vocabulary import EVENTS

# Events one app may have queued. Guards host memory and bounds how late a queued event can run
# against an app that is slower than the event rate; past it the event's overflow policy drops.
MAX_QUEUE = 1000


class RunnerQueue:
    """The queue half of `supervisor.AppRunner` (which sets every attribute below)."""

    install: InstallRecord
    app_id: str
    drops: Drops
    _cv: threading.Condition
    _jobs: deque[Job]
    _urgent: deque[Job]
    _stopping: bool
    # Why the app ended (disabled, uninstalled): set once, under `_cv`, by `end_events`.
    _ended: str | None
    _succession: Succession[RunnerQueue]

    def submit(self, name: str, payload: dict[str, Any], deadline_s: float) -> Future[Any]:
        future: Future[Any] = Future()
        self.enqueue(Job(name, payload, deadline_s, future))
        return future

    def submit_urgent(self, name: str, payload: dict[str, Any], deadline_s: float,
                      policy: object | None = None) -> tuple[Future[Any], threading.Event]:
        """A pre-send hook's job, ahead of every queued event (`host.supervise.presend`): its
        outcome, and an event set when it reaches the child (or settles unrun). Cancelling the
        outcome before then drops the job instead of running it. `policy`: the policy object
        it was decided under; another in force when the runner takes it (the hook waited for
        the app's running event), it is decided again, as a queued event is."""
        job, future, started = urgent_call(name, payload, deadline_s, policy)
        self.enqueue(job)
        return future, started

    def enqueue(self, job: Job) -> None:
        """Queue `job`. On a runner already stopping, whose thread will run nothing more, it is
        decided here, under `_cv` (so never left in a dead queue): handed to the runner the app
        continues in if that one handles it, else dropped, counted and audited. Whoever read
        this runner as a receiver before the stop (a dispatch, the pump's inbox) lands here."""
        dropped: Job | None = None
        with self._cv:
            late, successor = self._stopping, self._succession.current
            ended = self._ended if job.name in EVENTS else None  # its own hook still goes
            queue = self._urgent if job.started is not None else self._jobs
            if ended is not None and not late:
                dropped = job
            elif not late and len(queue) >= MAX_QUEUE and not _control(job):
                if job.started is not None or overflow_policy(job.name) == "refuse":
                    dropped = job
                else:
                    dropped = self._pop_oldest_event()
                    if dropped is None:  # only control jobs queued: refuse the new one
                        dropped = job
            if not late and dropped is not job:
                queue.append(job)
                self._cv.notify()
        if late:  # the newest runner is this one: the app stopped (disabled, uninstalled)
            self._enqueue_late(job, None if successor is self else successor)
        elif dropped is not None:
            self._drop(dropped, ended or "queue_full")

    def _enqueue_late(self, job: Job, successor: RunnerQueue | None) -> None:
        # Forwarded only to grants at least as wide: the receiver list (and the policy's
        # decision behind it) was made for this runner's, and must still hold for the new one.
        if _control(job):
            settle_failed(job, RuntimeError("app stopped"))
        elif (successor is not None and successor.handles(job.name)
              and self.install.grants <= successor.install.grants):
            successor.enqueue(job)
        else:
            # An app that ended (disabled, uninstalled) says so whether the event came while
            # its disable hook ran or after its runner stopped: the timing is not the reason.
            self._drop(job, (self._ended or "stopped") if successor is None else "not_handled")

    def succeeded_by(self, new: RunnerQueue) -> None:
        """The app continues in `new` (a restart): what reaches this runner, or one before it
        (they share one box), goes there (set after its queued events were handed over)."""
        with self._cv:
            self._succession.current, new._succession = new, self._succession  # one box

    def take_queued(self) -> list[Job]:
        """Remove and return the events still waiting (not dropped): the app continues in a
        new runner (an update, new settings, a new token), which is handed them."""
        with self._cv:
            events = [j for j in self._jobs if not _control(j)]
            for job in events:
                self._jobs.remove(job)
            events[:0], self._urgent = list(self._urgent), deque()
        return events

    def drop(self, job: Job, why: str) -> None:
        """`job` (one of this app's events) will never run: counted and audited here."""
        self._drop(job, why)

    def end_events(self, why: str) -> int:
        """The app was disabled or uninstalled (`why`): drop every event still queued, and
        every event that reaches it from now on, until its runner stops (counted and audited
        as `why` drops); only its own lifecycle hook and control jobs still run. A security
        boundary: whoever read this runner as a receiver before the change (a dispatch, the
        pump's inbox, a chain of pre-send hooks, which takes up to a deadline a hook) lands
        here, and the app, whose disable hook runs before its stop, was shown that message
        or event ahead of it or after it."""
        with self._cv:
            self._ended = why
        return self.drop_queued(why)

    @property
    def ended(self) -> bool:
        """The app was disabled or uninstalled (`end_events`): it gets no event any more."""
        return self._ended is not None

    def drop_queued(self, why: str) -> int:
        """Drop every event still waiting in the queue (counted and audited as drops): the app
        was disabled or uninstalled, so nothing more reaches it but its own hook, which must
        not wait behind a backlog of events carrying data it may no longer see."""
        events = self.take_queued()
        for job in events:
            self._drop(job, why)
        return len(events)

    def handles(self, event: str) -> bool:
        """Whether this install declared `event` and holds the grants it needs: what puts it
        among the event's receivers (`Host._receivers`) and lets a queued one be handed to it."""
        spec = EVENTS.get(event)
        return spec is not None and event in self.install.manifest.events \
            and frozenset(spec.needs) <= self.install.grants

    def _pop_oldest_event(self) -> Job | None:
        """Remove and return the oldest queued event (never a start/stop job). Under `_cv`."""
        for i, queued in enumerate(self._jobs):
            if not _control(queued):
                del self._jobs[i]
                return queued
        return None

    # ---- dropped events: counted, logged, audited in summaries (`drops`) ------------------

    @property
    def dropped(self) -> dict[str, int]:
        return self.drops.dropped

    def _drop(self, job: Job, why: str) -> None:
        self.drops.drop(job, why)

    def flush_drops(self) -> None:
        self.drops.flush()
