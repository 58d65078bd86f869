"""One runner per running install: start its child, feed it events, restart it with backoff.

Each runner owns a queue and a thread. Events for one app are delivered in order, one at a
time; different apps run concurrently, so one app's crash, hang or flood never slows another.
A dead child is restarted on the next job after an exponential backoff; the death is audited.
An app that keeps dying is stopped for crash-looping until the operator acts (`restarts`).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Protocol

from host.apps.installs import InstallRecord, mask_secrets, secret_values
from host.errors import GateError, RefusalBudgetExceeded
from host.gate.gate import Gate, Session
from host.gate.overcaps import refuse_over_caps
from host.server.events import Cause, writing
from host.store.pool import release_thread
from host.supervise.affinity import BURST_CALLS, Affinity
from host.supervise.applog import AppLog
from host.supervise.burst import end_burst, kept, start_burst
from host.supervise.child import AppFailed, Child, ChildDied, LayerMissing, done_result
from host.supervise.child import describe_status as _exit_reason
from host.supervise.drops import Drops
from host.supervise.jobs import STOP as _STOP
from host.supervise.jobs import EventDropped as EventDropped
from host.supervise.jobs import Job as Job
from host.supervise.jobs import Resume as Resume
from host.supervise.jobs import begin, settle_failed
from host.supervise.jobs import control as _control
from host.supervise.jobs import overflow_policy as overflow_policy
from host.supervise.jobs import untraced as _untraced
from host.supervise.logmask import masked_to_the_end
from host.supervise.restarts import CrashLooping, Restarts, counts_against_app
from host.supervise.runnerqueue import RunnerQueue
from host.supervise.succession import Succession
from sandbox.frames import Done
from sandbox.wirecaps import check_json_value


def within_caps(result: Any) -> Any:
    """A handler's `result`, or AppFailed when it breaks the frame caps (`check_json_value`),
    as the child's runtime words it: checked here, since the child's own check is no rule to
    an app that escaped its runtime (a Call's args are checked in `Child._answer`)."""
    try:
        check_json_value(result)
    except ValueError as exc:
        raise AppFailed("app_error", f"handler returned data that is not plain JSON: {exc}"[:500]
                        ) from None
    return result


class RunnerHost(Protocol):
    """What a runner needs of the host that owns it (`host.runtime.Host` is one). A protocol,
    not an import, so this room never imports the runtime that wires it."""

    gate: Gate

    def start_child(self, runner: AppRunner) -> Child: ...
    def first_job_over(self) -> None: ...

    def audit_supervisor(self, runner: AppRunner, event: str, detail: str) -> None: ...
    def crash_stopped(self, runner: AppRunner, why: str) -> None: ...

    def write_app_log(self, install_id: str, text: str, truncated: bool) -> None: ...
    def note_app_log(self, install_id: str, text: str) -> None: ...
    def event_allowed(self, install: InstallRecord, event: str, decided_under: object,
                      payload: dict[str, Any]) -> bool:
        ...

    affinity: Affinity

# A job that waited longer than this in a runner's queue is dropped (counted, logged to the
# app's log and audited in a summary): a stuck app must not build an unbounded backlog, and an
# event older than this is no longer news its handler could act on.
MAX_QUEUE_WAIT_S = 60.0


class AppRunner(RunnerQueue):
    def __init__(self, host: RunnerHost, install: InstallRecord) -> None:
        self.host = host
        self.install = install
        self.install_id = install.install_id
        self.app_id = install.app_id
        # What the child prints goes to its log as the app's; the host's notes as its own.
        self.log = AppLog(self._log, self._note, self._secret_values)
        # The secret settings' values of the record the child runs with (`_masked`), and that
        # record: masked in everything written to the log.
        self._secrets: list[str] = []
        self._secrets_of: InstallRecord | None = None
        self.child: Child | None = None
        self._settled: Child | None = None  # the child `affinity.settled` was told of
        self._calls = 0  # bridge calls in the job running now (`affinity.BURST_CALLS`)
        self._burst: Child | None = None  # the child `affinity.burst` pinned in this job
        self.session: Session | None = None
        self.handlers: frozenset[str] = frozenset()
        # Why this app was stopped for crash-looping (`restarts`; kept in its install record):
        # no child starts, every job is dropped, until the operator's `app enable` clears it.
        self.crash_stop: str | None = install.crash_stop
        # This runner's own crash-loop stop, set before it is recorded (`_crash_check`): a sync
        # that reads the record before `crash_stop` shows here must not take it for a stop
        # another host recorded (`Host._match_runners`: it replaced the runner and audited
        # "by another host").
        self.crash_stopping: str | None = None
        self.state = "crashed" if self.crash_stop else "idle"
        # Set once by `stop` and never cleared: the runner thread starts no child after it (the
        # kill of a running job's child must not look like a crash to restart from), and every
        # job still queued is answered as dropped. Not `state`, which the thread also writes.
        self._stopping = False
        self._ended: str | None = None  # disabled or uninstalled: no event (`end_events`)
        self.deaths = Restarts()  # the restart backoff and the crash-loop window
        self.last_error = ""  # the host's reason for the child's last death or stop
        self.last_crash = ""  # what that child last wrote to stderr: the app's words
        self.events_done = 0
        self.events_failed = 0
        self.refusal_stops = 0  # children stopped for passing the refusal budget
        self._logs_cut = 0  # `Child.logs_cut` of this runner's children that are gone
        self.drops = Drops(self.app_id, self._report_drops, lambda: self._stopping)
        # The job queue. `_claimed`: the event pump holds this app's child for one event (see
        # `host.supervise.pump`); queued jobs wait for it, and a job it hands over runs first.
        self._cv = threading.Condition()
        self._jobs: deque[Job] = deque()
        # Pre-send hooks' jobs (`submit_urgent`): taken before any queued event, so a message
        # waits at most for the one event the app is running, never for its backlog.
        self._urgent: deque[Job] = deque()
        # The runner this app continues in after its restarts (`hand_over`): an event that
        # reaches this one once it is stopping goes there (`enqueue`; one box, no chain).
        self._succession = Succession()
        self._handed: Job | None = None
        self._claimed = False
        self._running_job = False
        self._thread = threading.Thread(target=self._loop, name=f"app-{self.app_id}",
                                        daemon=True)
        self._thread.start()

    # ---- public (submitting, the queue and its drops: `host.supervise.runnerqueue`) -------

    def _report_drops(self, detail: str) -> None:
        self._note(detail)
        self.host.audit_supervisor(self, "events_dropped", detail)

    def status(self) -> dict[str, Any]:
        """What an operator needs to see about this runner right now (`app list`, `doctor`)."""
        with self._cv:
            queued = len(self._jobs) + len(self._urgent)
        with self.drops.lock:
            dropped = dict(self.dropped)
        backoff = self.deaths.backoff_left() if self.state == "backoff" else 0.0
        return {
            "state": self.state, "restarts": self.restarts, "failures": self.deaths.failures,
            "crash_stop": self.crash_stop,
            "events_done": self.events_done, "events_failed": self.events_failed,
            "queued": queued, "dropped": sum(dropped.values()), "dropped_by_reason": dropped,
            "backoff_s": round(backoff, 3), "last_error": self.last_error[:300],
            "last_crash": self.last_crash[-300:],
            "refusal_stops": self.refusal_stops, "logs_cut": self.logs_cut(),
        }

    @property
    def restarts(self) -> int:
        return self.deaths.restarts

    def logs_cut(self) -> int:
        """Events and loads whose log output passed the host's cap (`host.supervise.logcap`)."""
        child = self.child
        return self._logs_cut + (child.logs_cut if child is not None else 0)

    def child_gone(self, child: Child) -> None:
        """`child` will not run again (closed, or its start failed): keep its counts."""
        self._logs_cut += child.logs_cut

    def ensure_started(self) -> None:
        """Start the child now (blocking) instead of on the first event."""
        fut: Future[Any] = Future()
        self.enqueue(Job("__start__", {}, 0.0, fut))
        fut.result()

    def stop(self, reason: str = "stopped") -> None:
        """Kill the child and end the runner thread, which closes the child's descriptors: a
        thread still writing to the channel when the join gives up keeps its number (see
        `Child.kill`), and the runner frees it when that job ends."""
        with self._cv:  # under `_cv`: an event queued after this is decided by `enqueue`
            first = not self._stopping
            self._stopping = True  # before the kill: the death it causes restarts nothing
            self.state = "stopped"
            if first:
                self._jobs.append(_STOP)
                self._cv.notify_all()  # the loop's wait, or a backoff's (`_ensure_child`)
        child = self.child
        if child is not None:
            child.kill(reason, code="stopped")
        self._thread.join(timeout=5)
        self.flush_drops()

    def kill_child(self, reason: str) -> None:
        child = self.child
        if child is not None:
            child.kill(reason, code="revoked")

    # ---- the runner thread ---------------------------------------------------------------

    def idle(self) -> bool:
        """No job queued and none running."""
        with self._cv:
            return not self._busy()

    def _busy(self) -> bool:
        """A job queued, handed over, claimed by the pump or running. Under `_cv`: an event
        starts on this runner's child only after one of these is set under it."""
        return bool(self._jobs or self._urgent or self._handed or self._claimed
                    or self._running_job)

    # ---- between events (the upkeep's `watchdog.IdleWatch`) --------------------------------

    def watched_child(self) -> tuple[Child, int] | None:
        """(child, pid) while a started child runs, else None."""
        child = self.child
        if child is None or child.dead or self.state != "running":
            return None
        return child, child.pid

    def busy_seconds(self, child: object) -> float:
        assert isinstance(child, Child)
        return child.busy_time()

    def stop_idle_compute(self, child: object, reason: str) -> bool:
        """Kill `child` for computing between events, if it is still this runner's, and
        account and audit its death here, once: an event it was in then fails on it without
        counting it again (`_child_died`), and the next job restarts the child."""
        with self._cv:
            if child is not self.child or self.child is None or self.child.dead:
                return False
            self.child.kill(reason, code="idle_compute")
            self.child.death_reported = True
            detail = self._death(reason, "idle_compute")
        self._note(reason)
        self.host.audit_supervisor(self, "child_died", detail)
        self._crash_check()
        return True

    # ---- the event pump's side (host.supervise.pump) ------------------------------------------

    def try_claim(self) -> Child | None:
        """The running child, reserved for one pump event; None unless this app is idle."""
        with self._cv:
            if self._busy() or self._ended is not None:  # ended: its `enqueue` drops it
                return None
            child = self.child
            if (child is None or child.dead or child.has_exited() or self.state != "running"
                    or self.session is None or self.session.session_id != child.session_id):
                return None
            self._claimed = True
            return child

    def finish_claimed(self, job: Job, done: Done) -> None:
        """The pump saw the claimed event's Done: account for it like `_run` does."""
        try:
            result = within_caps(done_result(done))
        except AppFailed as exc:
            self._failed(job, exc)
        else:
            self.deaths.succeeded()
            self.events_done += 1
            job.outcome.set_result(result)
        finally:
            self._after_event()
            with self._cv:
                self._claimed = False
                if self._jobs or self._urgent:  # it sleeps until then; waking it costs
                    self._cv.notify()

    def hand_over(self, job: Job) -> None:
        """The pump hands its claimed event (`job.resume`) to this runner's thread to finish."""
        with self._cv:
            self._handed = job
            self._claimed = False
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not (self._handed or ((self._urgent or self._jobs) and not self._claimed)):
                    self._cv.wait()
                if self._handed is not None:
                    job, self._handed = self._handed, None
                elif self._urgent:
                    job = self._urgent.popleft()
                else:
                    job = self._jobs.popleft()
                self._running_job = True
            try:
                if self._take(job):
                    release_thread()  # its connections, for the next app's start
                    return
            finally:
                with self._cv:
                    self._running_job = False
                    self._cv.notify()

    def _take(self, job: Job) -> bool:
        """Handle one job; True when the runner must stop."""
        if job is _STOP or self._stopping:
            # This thread ends here: every job still queued is answered now (before, only the
            # one taken was; the rest waited forever), an event as a counted drop, never silent.
            with self._cv:
                left = [job, *self._urgent, *self._jobs]
                self._jobs.clear()
                self._urgent.clear()
            for j in left:
                if j is _STOP:
                    continue
                if _control(j):
                    settle_failed(j, RuntimeError("app stopped"))
                else:
                    self._drop(j, "stopped")
            child, self.child = self.child, None
            if child is not None:
                self.child_gone(child)
                child.close()  # here, on the thread that used it (`stop`)
            return True
        if self.crash_stop is not None:  # crash-looped: nothing runs until the operator acts
            self._crashed(job)
            return False
        if job.name == "__start__":
            try:
                self._ensure_child()
                job.outcome.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                settle_failed(job, exc)
        else:
            waited = time.monotonic() - job.enqueued
            if waited > MAX_QUEUE_WAIT_S and job.resume is None:
                self._drop(job, "expired")
                return False
            if job.policy is not None and job.resume is None \
                    and not self.host.event_allowed(self.install, job.name, job.policy,
                                                    job.payload):
                # A reload narrowed the policy while it waited: what it carries no longer
                # reaches this app (`Host.event_allowed`, decided once per revision; a key
                # it may no longer read, such as a message's room, drops it too).
                self._drop(job, "policy")
                return False
            self._run(job)
        child = self.child
        if child is not None and child is not self._settled:
            # Once per child, after its first job was answered: off that job's path.
            self._settled = child
            self.host.first_job_over()
            if not child.dead:
                self.host.affinity.settled(self, child.app_pid())
        return False

    def _run(self, job: Job) -> None:
        # Every bridge call of the app's for `job` is served on this thread, inside this block:
        # the writes it makes raise events one deeper than `job` (`host.server.events.Cause`).
        with writing(Cause(job.depth + 1, self.app_id, self.install_id)):
            self._handle(job)

    def _handle(self, job: Job) -> None:
        self._calls = 0
        try:
            if job.resume is not None:
                r = job.resume
                result = r.child.resume_event(r.frame_id, r.raw, r.failure, self._on_call,
                                              self.log)
            else:
                child = self._ensure_child()
                if not begin(job):  # a pre-send hook whose message was decided without it
                    self._drop(job, "abandoned")
                    return
                result = child.deliver(job.name, job.payload, job.deadline_s, self._on_call,
                                       self.log)
            result = within_caps(result)
            self.deaths.succeeded()
            self.events_done += 1
            job.outcome.set_result(result)
        except AppFailed as exc:
            self._failed(job, exc)
        except CrashLooping:  # the death that found the child dead was one too many: not run
            self._drop(job, "crashed")
        except (ChildDied, LayerMissing, GateError, OSError) as exc:
            self.events_failed += 1
            # Only the child's own death says whose doing it was; the rest are the host's side.
            self._child_died(str(exc), exc.code if isinstance(exc, ChildDied) else (
                "confinement" if isinstance(exc, LayerMissing) else "start_failed"))
            settle_failed(job, _untraced(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. an unreadable package at start
            # The runner thread must survive anything, or this app's queue would stall forever.
            self.events_failed += 1
            self._child_died(f"could not start: {type(exc).__name__}: {exc}", "start_failed")
            settle_failed(job, _untraced(exc))
        finally:
            burst, self._burst = self._burst, None
            if burst is not None:
                end_burst(self.host.affinity, burst)
            self._after_event()

    def _failed(self, job: Job, exc: AppFailed) -> None:
        self.events_failed += 1
        self._note(f"handler {job.name} failed: {exc.code}: {exc.message}")
        settle_failed(job, _untraced(exc))

    def _after_event(self) -> None:
        session = self.session
        if session is not None and session.revoked and self.child is not None:
            self.child.kill(session.revoked, code="revoked")

    def _ensure_child(self) -> Child:
        child = self.child
        if child is not None and not child.dead and not child.has_exited():
            return child
        if child is not None and not child.death_reported and (  # died between events (the
                not child.dead or child.death_code == "zygote_died"):  # OOM killer, its zygote):
            self._child_died(child.death or _exit_reason(child.exit_status), child.death_code)
        if child is not None:  # a new child runs (unless that death was one too many)
            self.child_gone(child)
            child.close()
            self.child = None
        if self.crash_stop is not None:
            raise CrashLooping(self.crash_stop)
        with self._cv:  # a stop ends the pause (a sleep outlived it, then ran the held event)
            self._cv.wait_for(lambda: self._stopping, self.deaths.backoff_left())
        if self._stopping:
            raise ChildDied("app stopped", "stopped")
        self.state = "starting"
        child = self.child = self.host.start_child(self)
        child.refuse_args = self._refuse_args
        self.state = "running"
        return child

    def _child_died(self, reason: str, code: str) -> None:
        child = self.child
        if child is not None and child.death_reported:
            return  # killed and accounted between events (`stop_idle_compute`)
        detail = self._death(reason, code)
        if not self._stopping:  # a load refused (`import os`), a limit, a crash: was audited
            # only, `app logs` silent. One host note (`applog.host_line`: one line).
            self._note(f"the app's process stopped: {reason}")
        self.host.audit_supervisor(self, "child_died", detail)
        self._crash_check()

    def _crash_check(self) -> None:
        """Past the crash limit (`restarts.CRASH_LIMIT`): stop for crash-looping, once. The
        host audits it and keeps it in the install record; the queued jobs are dropped."""
        why = self.deaths.crash_loop(self.last_error)
        if why is None or self._stopping or self.crash_stop is not None:
            return
        self.crash_stopping = why  # before the record: a sync reading it knows it is ours
        self.host.crash_stopped(self, why)  # recorded before it shows (`Host._match_runners`)
        with self._cv:  # (no session: its dead child's token expiring restarts nothing)
            self.crash_stop, self.state, self.session = why, "crashed", None
        self._note(why)
        self.drop_queued("crashed")

    def _crashed(self, job: Job) -> None:
        """A job reaching a crash-looped runner: dropped, never run (the dead child is freed
        here, on the thread that used it)."""
        child, self.child = self.child, None
        if child is not None:
            self.child_gone(child)
            child.close()
        if _control(job):
            settle_failed(job, CrashLooping(self.crash_stop or "crash-looping"))
        else:
            self._drop(job, "crashed")

    def _death(self, reason: str, code: str) -> str:
        """Account for the child's death (its error, the restart's backoff, the crash-loop
        window when the app caused it: `restarts.NOT_THE_APPS`); the detail to audit."""
        child = self.child
        if child is not None:
            child.death_reported = True
        # The app's own words, which may hold its secret settings' values: masked as its log is
        # (`_masked`), for they go into the audit chain, `app list` and the console's apps page.
        # The text is cut at `MAX_STDERR_KEPT` bytes: a value's start at its end is masked too.
        crash = (masked_to_the_end(child.stderr_text().strip(), self._secret_values())[-500:]
                 if child is not None else "")
        # Apart: the reason is the host's words, the crash the app's (what its child wrote to
        # stderr). Joined and cut from the end, an app's long stderr pushed the host's reason
        # out of what `app list` and the console show, leaving only words the app chose.
        self.last_error, self.last_crash = reason, crash
        self.deaths.died(counts=not self._stopping and counts_against_app(code))
        self.state = "stopped" if self._stopping else "backoff"
        return reason + (f" | {crash}" if crash else "")

    def _on_call(self, child: Child, action: str, args: dict[str, Any]) -> Any:
        session = self.session
        if session is None or session.session_id != child.session_id:
            raise GateError("permission_denied", "no session on this channel")
        self._calls += 1
        if self._calls == BURST_CALLS:
            self._burst = start_burst(self.host.affinity, self, child)
        try:
            return self.host.gate.handle(session, action, args)
        except RefusalBudgetExceeded:
            self._over_refusal_budget(child)
            raise
        finally:
            if self._burst is not None:
                kept(self._burst)  # a call (not a Log frame) keeps the burst's pin

    def _refuse_args(self, child: Child, action: str, args: dict[str, Any], problem: str,
                     frame: bytes) -> Exception:
        """A call whose args broke the caps (`Child._answer`): the gate audits and charges
        the refusal (`host.gate.overcaps`); past the refusal budget the child is stopped."""
        session = self.session
        if session is None or session.session_id != child.session_id:
            return GateError("permission_denied", "no session on this channel")
        refusal = refuse_over_caps(self.host.gate, session, action, args, problem, frame)
        if isinstance(refusal, RefusalBudgetExceeded):
            self._over_refusal_budget(child)
        return refusal

    def _over_refusal_budget(self, child: Child) -> None:
        """The app passed its refusal budget (`host.ledger.refusals.REFUSAL_BUDGET`): stop its child
        and tell the operator (`app list` shows the count and the reason, `app logs` a line).
        The gate has audited one summary for the window. A restarted child that keeps being
        refused is stopped again at its first refusal while the window is still full."""
        reason = "stopped: more refusals than its refusal budget allows"
        with self.drops.lock:
            self.refusal_stops += 1
        self.last_error = reason
        self._note(f"{reason} (the refused calls are counted, not each audited)")
        child.kill(reason, code="refusals")

    def _log(self, text: str, truncated: bool) -> None:
        """The app's output, masked already (`self.log`, `applog.AppLog`: once, by the way it
        came), into its log."""
        self.host.write_app_log(self.install_id, text, truncated)

    def _note(self, text: str) -> None:
        """A note of the host's in the app's log (`applog`: never mistaken for app output).
        Masked too: a note may quote the app's own text (a handler's exception message)."""
        self.host.note_app_log(self.install_id, self._masked(text))

    def _masked(self, text: str) -> str:
        """`text` with the values of the app's secret settings masked, as the host writes it to
        the log: `app logs` masks the values as they are when it runs, so a value printed before
        a rotation was shown in clear after it (and sat in the file in clear all along). The
        values are those of `install`, the record the child was loaded with (a start re-reads
        it: `Host.start_child`); longest first, so one holding another is masked whole."""
        return mask_secrets(text, self._secret_values())

    def _secret_values(self) -> list[str]:
        """The secret settings' values of `install` (`_masked`; each event's output stream
        masks them across its frames too: `logmask`)."""
        install, values = self.install, self._secrets
        if install is not self._secrets_of:  # its first line, or a start with a newer record
            values = secret_values(install)
            self._secrets, self._secrets_of = values, install
        return values

