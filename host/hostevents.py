"""What the host does for its running apps once they run: which apps an event reaches, its
dispatch (through the event pump, or each runner's queue), the pre-send hooks, and the apps'
logs and the supervisor's audit records the runners ask for (`supervisor.RunnerHost`).

`runtime.Host` is built on it (its state set in `Host.__init__`), as the embedded server is on
`host.server.core.ServerCore`.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from host.apps.installs import InstallRecord, InstallStore
from host.gate.eventpolicy import EventPolicy
from host.gate.gate import PolicySource
from host.home import Home
from host.hostconfig import HostConfig
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.server.events import MAX_EVENT_DEPTH, NO_CAUSE, Cause, emitting_cause
from host.supervise import applog
from host.supervise.delivery import Delivery
from host.supervise.presend import HookTurn, run_pre_send, supervisor_record
from host.supervise.pump import EventPump
from host.supervise.restarts import record_crash_stop
from host.supervise.supervisor import AppRunner, Job
from policies.policy import Policy
from policies.vocabulary import EVENTS

log = logging.getLogger("stockade.host")


class HostEvents:
    """The events half of `runtime.Host` (which sets every attribute below)."""

    home: Home
    config: HostConfig
    installs: InstallStore
    ledger: Ledger
    policy: PolicySource
    runners: dict[str, AppRunner]
    event_policy: EventPolicy
    event_counts: dict[str, int]
    # Events not delivered for being deeper than `MAX_EVENT_DEPTH` (each audited once).
    loop_stops: int
    pump: EventPump | None
    _lock: threading.RLock
    _receivers_cache: dict[str, tuple[AppRunner, ...]]
    _receivers_policy: Policy

    # ---- events ------------------------------------------------------------------------------

    def _receivers(self, event: str) -> tuple[AppRunner, ...]:
        """The running apps that declared `event`, hold the grants it needs and are permitted
        by the policy what its data amounts to (`host.gate.eventpolicy`), by app id."""
        with self._lock:
            policy = self.policy.current()
            if policy is not self._receivers_policy:  # reloaded: every event decided again
                self._receivers_cache, self._receivers_policy = {}, policy
            cache = self._receivers_cache  # fetched before any install record is read
            found = cache.get(event)
            if found is not None:
                return found
            if event not in EVENTS:
                return ()  # not cached: the cache holds known event names only
            found, refused = self.event_policy.receivers(policy, event, (
                r for r in sorted(self.runners.values(), key=lambda r: r.app_id)
                if r.handles(event)))
            cache[event] = found
        for runner, note in refused:  # once per revision, install and event
            self.note_app_log(runner.install_id, note)
        return found

    def event_allowed(self, install: InstallRecord, event: str, decided_under: object,
                      payload: dict[str, Any]) -> bool:
        """Whether the policy in force still lets `event` (receivers decided under
        `decided_under`) reach `install` with `payload` (a hook always), asked as a queued
        event is taken (`EventPolicy.still_allowed`). Same policy object: one identity check."""
        policy = self.policy.current()
        return policy is decided_under or event not in EVENTS or \
            self.event_policy.still_allowed(policy, install, event, payload)

    def _on_server_event(self, name: str, payload: dict[str, Any]) -> None:
        """Called by the server after commit: hand off, never block the server action."""
        self.event_counts[name] = self.event_counts.get(name, 0) + 1
        self.dispatch(name, payload, emitting_cause())

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no app has an event queued, running or in the pump (events cascade: one
        handler's bridge call can raise events for others: idle must hold thrice in a row)."""
        deadline = time.monotonic() + timeout
        calm = 0
        while time.monotonic() < deadline:
            with self._lock:
                runners = list(self.runners.values())
            held = (pump := self.pump) is not None and pump.unstarted() > 0  # on no runner
            calm = calm + 1 if not held and all(r.idle() for r in runners) else 0
            if calm >= 3:
                return True
            time.sleep(0.02)
        return False

    def dispatch(self, name: str, payload: dict[str, Any], cause: Cause = NO_CAUSE) -> Delivery:
        """Deliver an event to every app that handles it (in app-id order); the returned
        `Delivery` settles each app's outcome as it finishes. Never blocks. `cause`: the cause
        of the write that raised it; one deeper than `MAX_EVENT_DEPTH` reaches no app."""
        policy = self.policy.current()  # before the receivers: a reload after is decided again
        runners = self._receivers(name)
        if cause.depth > MAX_EVENT_DEPTH and runners:
            self._stop_loop(name, cause, runners)
            return Delivery(())
        deadline_s = self.config.event_deadline_s
        payloads = self.event_policy.payloads(policy, name, runners, payload)  # room or None
        if (pump := self.pump) is not None:
            return pump.deliver(name, payload, deadline_s, runners, policy, payloads,
                                cause.depth)
        delivery = Delivery([r.app_id for r in runners])
        for i, runner in enumerate(runners):
            runner.enqueue(Job(name, payloads[i] if payloads else payload, deadline_s,
                               delivery.slot(i), policy=policy, depth=cause.depth))
        return delivery

    def _stop_loop(self, name: str, cause: Cause, runners: tuple[AppRunner, ...]) -> None:
        """An event too deep for any app: counted, and audited once (not once per app it would
        have reached), naming the app whose write raised it. The chain it belonged to ends
        here: no app handles it, so none writes again because of it."""
        with self._lock:  # exact under concurrent emitters
            self.loop_stops += 1
        apps = ", ".join(r.app_id for r in runners[:10]) + (" ..." if len(runners) > 10 else "")
        detail = (f"{name} at depth {cause.depth} not delivered to {len(runners)} app(s) "
                  f"({apps}): past the event depth limit {MAX_EVENT_DEPTH}, a loop between "
                  f"apps' handlers; raised by a write of this app's while it handled an event")
        log.warning("loop stopped: %s (app %s)", detail, cause.app_id)
        if cause.install_id is not None:  # where its author looks (`stockade app logs`)
            self.note_app_log(cause.install_id, f"loop stopped: {detail}")
        with contextlib.suppress(Exception):  # the event is stopped either way
            self.ledger.append(AuditRecord(kind="supervisor", app_id=cause.app_id,
                                           install_id=cause.install_id, event="loop_stopped",
                                           detail=detail[:500]))

    def pre_send(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Each app's pre-send hook, in app-id order, short deadline (`host/supervise/presend`)."""
        hooks = self._receivers("message.pre_send")
        return run_pre_send(message, hooks, self.ledger, self.config.pre_send_deadline_s,
                            self.config.pre_send_timeout, self._hook_turn)

    def _hook_turn(self, runner: AppRunner) -> HookTurn | None:
        """Whether `runner`'s app still gets the pre-send hook now its turn in a chain has
        come, and where: the runner its install runs in now (an update or new settings
        restarted it meanwhile), with the keys it may not read; None when it no longer runs
        (disabled, uninstalled), no longer handles the event, or the policy in force keeps it
        from the app. A chain takes up to a deadline a hook, and its receivers were read
        before the first: a narrowing reload, or an operator's disable, in between must stop
        the later ones (a disabled app was shown the message, and its rewrite applied)."""
        with self._lock:  # never mid-sync: a restarting app's old runner gone, its new not yet
            current = self.runners.get(runner.install_id)
        if current is None or current.ended or not current.handles("message.pre_send"):
            return None
        policy = self.policy.current()
        hidden = self.event_policy.admitted(policy, current.install, "message.pre_send")
        return None if hidden is None else HookTurn(current, hidden, policy)

    # ---- logs and audit ------------------------------------------------------------------------

    def write_app_log(self, install_id: str, text: str, truncated: bool) -> None:
        applog.write_output(self.home.logs_dir / f"{install_id}.log", text, truncated)

    def note_app_log(self, install_id: str, text: str) -> None:
        applog.write_note(self.home.logs_dir / f"{install_id}.log", text)

    def crash_stopped(self, runner: AppRunner, why: str) -> None:
        self.audit_supervisor(runner, "crash_looping", why)
        record_crash_stop(self.installs, runner.install_id, runner.app_id, why)

    def audit_supervisor(self, runner: AppRunner, event: str, detail: str) -> None:
        with contextlib.suppress(Exception):
            supervisor_record(self.ledger, runner, event, detail)
