"""Deadlines for running events: one watchdog thread per host kills the child whose event ran
too long, and a count of the events running right now (which decides whether a reader spins).
Between events no deadline runs: there the host's upkeep round (`IdleWatch`) kills a child that
computes at all (past a small allowance), since an app computes only for an event.

The watchdog knows a child only as `Timed` (a ticket, a deadline and `kill`), and the idle watch
a runner only as `Idler`, so this module never imports `child.py` or `supervisor.py`.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from host.supervise.procfs import cpu_seconds

# CPU time an app's child may use between events within IDLE_WINDOW_ROUNDS. Guards the host's
# cores against an app that escaped its runtime, wrote its Done and computes on outside every
# deadline (before, only RLIMIT_CPU, an hour per child and a new hour per restart, stopped it),
# however often its events come. A child's own work between events is freeing what its last
# event left (a collection, deallocations): milliseconds. Past this it is killed, audited and
# restarted.
IDLE_CPU_ALLOWANCE_S = 0.5
# The rounds (of the upkeep, every 2 s) over which that allowance holds: a child may spend at
# most IDLE_CPU_ALLOWANCE_S between events within any ~60 s, under 1 % of a core for good.
IDLE_WINDOW_ROUNDS = 30
# One clock tick: /proc counts CPU time in ticks, so a round's figure may read up to one high;
# taken off each round's idle CPU, so a busy app's rounding never adds up to a kill.
CPU_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

# The idle watch looks at this many apps, then sleeps this long before the next ones: a round
# over many apps then never takes a core (and the GIL) for long in one piece, so an event
# fanned out to every app during a round waits at most for one slice (~0.1 ms), not the
# whole round (~0.5 ms for 50 apps). 200 apps: 25 pauses, 50 ms a round, every 2 s.
IDLE_SLICE_APPS = 8
IDLE_SLICE_PAUSE_S = 0.002


class Timed(Protocol):
    """What the watchdog needs of a child (`host.supervise.child.Child` is one)."""

    @property
    def ticket(self) -> int: ...

    @property
    def deadline_s(self) -> float: ...

    def kill(self, reason: str, *, code: str = ...) -> None: ...


class _Running:
    """How many events this host process is running right now (see NEXT_FRAME_SPIN_NS)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n


running_events = _Running()


def running_add(n: int) -> None:
    """Count events running outside `Child.deliver` (the pump's; see NEXT_FRAME_SPIN_NS)."""
    running_events.add(n)


class Watchdog:
    """Kills children whose deadline passed. One thread for the whole host.

    Deadlines are kept in one FIFO per duration (`seconds`): armed under the lock from the
    monotonic clock, the deadlines of one duration arrive in order, so each FIFO is sorted and
    its head is its earliest. A finished event only bumps its child's ticket; its entry becomes
    stale and is dropped when it reaches a FIFO's head, by the next `arm` of that duration or
    by the thread. So the structure holds about one entry per event still running, arming
    costs O(1), and the thread wakes only for the earliest live deadline, never once per
    finished event (a heap held every finished event until its deadline passed, and the thread
    popped them one by one).
    """

    def __init__(self) -> None:
        # An entry: (deadline, [(child, ticket), ...]); one pair for `arm`, a fan-out's for
        # `arm_many`. Pairs whose ticket moved on are pruned when their entry is at the head.
        self._queues: dict[float, deque[tuple[float, list[tuple[Timed, int]]]]] = {}
        self._cv = threading.Condition()
        self._wake_at = math.inf  # when the thread wakes next (inf: when notified)
        threading.Thread(target=self._run, name="stockade-watchdog", daemon=True).start()

    def arm(self, child: Timed, seconds: float, ticket: int) -> None:
        """Kill `child` after `seconds` unless its ticket has moved on by then."""
        self.arm_many([(child, ticket)], seconds)

    def arm_many(self, pairs: Sequence[tuple[Timed, int]], seconds: float) -> None:
        """`arm` for every (child, ticket) of one fan-out at once: one entry, one lock."""
        entry = list(pairs)  # pruned in place as events finish (`_live`), so the entry owns it
        with self._cv:
            deadline = time.monotonic() + seconds
            q = self._queues.get(seconds)
            if q is None:
                q = self._queues[seconds] = deque()
            while q and not _live(q[0][1]):
                q.popleft()  # finished events at the head: drop them here, not in the thread
            q.append((deadline, entry))
            # Wake the thread only when it would sleep past this deadline.
            if deadline < self._wake_at:
                self._wake_at = deadline
                self._cv.notify()

    def _due(self, now: float) -> tuple[list[tuple[Timed, int]], float]:
        """Pop expired entries and stale heads; (live pairs expired, earliest live deadline)."""
        expired: list[tuple[Timed, int]] = []
        earliest = math.inf
        for seconds, q in list(self._queues.items()):
            while q:
                deadline, pairs = q[0]
                if not _live(pairs):
                    q.popleft()
                elif deadline <= now:
                    q.popleft()
                    expired.extend(pairs)
                else:
                    earliest = min(earliest, deadline)
                    break
            if not q:
                del self._queues[seconds]
        return expired, earliest

    def _run(self) -> None:
        while True:
            with self._cv:
                now = time.monotonic()
                expired, earliest = self._due(now)
                if not expired:
                    self._wake_at = earliest
                    self._cv.wait(None if earliest == math.inf else earliest - now)
                    continue
            for child, ticket in expired:
                if child.ticket == ticket:
                    child.kill(f"deadline of {child.deadline_s:.3g}s exceeded", code="timeout")

    def pending(self) -> int:
        """Children held (live or not yet pruned); diagnostics and tests."""
        with self._cv:
            return sum(len(pairs) for q in self._queues.values() for _d, pairs in q)


def _live(pairs: list[tuple[Timed, int]]) -> bool:
    """Prune the finished pairs of one entry in place; True while any is still running."""
    if any(child.ticket != ticket for child, ticket in pairs):
        pairs[:] = [(child, ticket) for child, ticket in pairs if child.ticket == ticket]
    return bool(pairs)


class Idler(Protocol):
    """What the idle watch needs of an app's runner (`host.supervise.supervisor.AppRunner`)."""

    def watched_child(self) -> tuple[object, int] | None:
        """(child, pid) of the runner's running child, else None."""
        ...

    def busy_seconds(self, child: object) -> float:
        """Wall time `child` has spent in events so far (`Child.busy_time`)."""
        ...

    def stop_idle_compute(self, child: object, reason: str) -> bool:
        """Kill `child` if it is still the runner's; audit why (now, or through the event it
        was in)."""
        ...


@dataclass
class _Seen:
    child: object
    cpu: float  # the child's CPU seconds at the last round
    busy: float  # and its seconds in events
    idle: deque[float]  # CPU seconds it spent between events in each of the last rounds


class IdleWatch:
    """Kills an app's child that computes between events (run by the host's upkeep round).

    An app computes only inside an event (or its handshake, load, snippet): one thread, so an
    event's CPU time cannot exceed its wall time, which the child keeps (`Child.busy_time`).
    Each round reads a child's CPU time (/proc) and its time in events; what the CPU grew by
    beyond the time in events, less one clock tick (the kernel counts CPU in ticks), was spent
    between events. Over the last IDLE_WINDOW_ROUNDS rounds that may add up to the allowance;
    past it the child is killed. This holds however often events come: a child that answers
    each event at once and computes on between them is measured all the same. Reads /proc off
    the event path; an event adds two clock reads.
    """

    def __init__(self, cpu: Callable[[int], float | None] = cpu_seconds,
                 allowance_s: float = IDLE_CPU_ALLOWANCE_S,
                 pause: Callable[[], object] = lambda: time.sleep(IDLE_SLICE_PAUSE_S)) -> None:
        self._cpu = cpu
        self.allowance_s = allowance_s
        self._pause = pause
        self._seen: dict[str, _Seen] = {}  # by runner key: its child at the last round

    def round(self, runners: Mapping[str, Idler]) -> list[str]:
        """Look at every runner once; the keys of those whose child was killed."""
        seen: dict[str, _Seen] = {}
        killed: list[str] = []
        for n, (key, runner) in enumerate(runners.items()):
            if n and n % IDLE_SLICE_APPS == 0:
                self._pause()
            live = runner.watched_child()
            if live is None:
                continue  # starting, stopped, in backoff: nothing to measure
            child, pid = live
            cpu = self._cpu(pid)  # before the time in events: an event between the two reads
            if cpu is None:       # then counts as more time in events, never as idle CPU
                continue  # gone: its runner hears of it at the next event
            busy = runner.busy_seconds(child)
            before = self._seen.get(key)
            if before is None or before.child is not child:
                seen[key] = _Seen(child, cpu, busy, deque(maxlen=IDLE_WINDOW_ROUNDS))
                continue  # a new child: measured from here
            # Negative (events that waited on the host) is no credit for later.
            before.idle.append(max(0.0, cpu - before.cpu - (busy - before.busy) - CPU_TICK_S))
            before.cpu, before.busy = cpu, busy
            used = sum(before.idle)
            if used <= self.allowance_s:
                seen[key] = before
            elif runner.stop_idle_compute(child, (
                    f"killed: it computed {used:.2f} s of CPU between events within "
                    f"{len(before.idle)} rounds, past the {self.allowance_s:g} s an app may "
                    "use outside its events (an app computes only while it handles an event)")):
                killed.append(key)
        self._seen = seen
        return killed


_watchdog: Watchdog | None = None
_watchdog_lock = threading.Lock()


def watchdog() -> Watchdog:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None:
            _watchdog = Watchdog()
        return _watchdog
