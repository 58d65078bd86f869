"""Each app's child and the runner thread that answers its calls: on one core, or in a burst
that runs alone, on two cores apart where both poll.

A bridge call is two hand-offs between processes: the child writes its Call and sleeps, the
runner thread wakes and answers, the child wakes. When the two sit on different cores, each
hand-off wakes an idle core (an inter-processor interrupt and its exit from a sleep state);
on one core it is a direct switch. Measured on this 2-core machine (docs/BENCH.md, "One core
or two, and pinned pairs"): the whole bench on one core read in 187-191 µs p50 against 273-289
µs on two, and four apps together made *more* calls per second on one core than on two. Pinning
each pair to one core keeps the cheap hand-off and still spreads the apps over every core:
round-robin, so the pairs are balanced.

Two modes. *Bursts* (the default, `HostConfig.pin_bursts`): a job whose handler has made
`BURST_CALLS` bridge calls is pinned until it ends, then both go back to every core; a handler
calling in a loop gets the cheap hand-off, and the many short handlers of a REST-heavy
workspace never pin. A burst whose event is the only one running goes further (`apart`): the
child to the core after its runner's, and both ends poll instead of sleeping (the runner thread
for the next Call, the child for its Reply, which says so: `Reply.spin`), so no hand-off sleeps
or wakes anything; read p50 ~125 against ~175 µs on one core (docs/BENCH.md, "Bursts alone, on
two cores apart"). It takes both cores while it runs, which is why only alone: the next event
to start finds the runner polling for at most one Call more.

*Always* (`HostConfig.pin_apps`, `stockade serve --pin-apps`): pinned from the child's first job
on; under a REST-heavy load that cost ~20 % more host CPU per conversation, since a thread that
may not leave its core waits there for the interpreter lock and for the processes sharing that
core (docs/BENCH.md, "Pinned bursts").

*The host's core* (`HostConfig.host_core`, on by default): every thread of the host process
shares one core (`place_host`); an app's child runs on every core once its start is done
(`starting`, `spread`), as does the REST front; the zygote on every core but the host's
(`aside`: the children it forks ahead of need prime themselves there). The host's Python runs
under one interpreter lock whatever the core count; spread over two cores,
each hand-off of that lock between two threads (every SQLite statement, pipe write and
contended lock lets another thread in) wakes the other core, which on this VM costs about as
much as a read's whole gate. With the host's threads on one core four apps calling at once made
1.7 times the calls a second, and a REST workspace took a quarter less host CPU a conversation
(docs/BENCH.md, "The host's threads on one core"). A burst alone still goes apart: its runner
thread stays on the host's core, its child goes to the next. A burst with other events running
has its child on the host's core too: its hand-offs are then direct switches, not cross-core
wake-ups (four apps calling at once: 11 800-13 200 against 10 900-11 500 reads a second, the
host's system time a read 24 -> 7 µs; docs/BENCH.md, "Four apps at once: what a read costs the
host"), but only while it keeps calling: a child that goes `burst.BURST_PATIENCE_MS` without a
frame gets every core back, so an app cannot hold the host's core by computing after a burst
(`host.supervise.burst`). The core is claimed machine-wide (`host.supervise.coreclaim`):
several hosts on one machine take a core each, and a host that finds every core claimed keeps
its threads on every core.

Only where the hand-offs sleep: with `sandbox.wire.SPIN_MIN_CPUS` or more cores both ends
spin before they sleep, and a spinning child on its runner's core would hold the very core its
answer needs. There the scheduler places threads as before. Best effort: a host that may not
set its children's affinity (no CAP_SYS_NICE over another uid) logs it once and runs unpinned.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref

from host.supervise.coreclaim import CoreClaim, claim_core
from sandbox.wire import SPIN_MIN_CPUS

log = logging.getLogger("stockade.affinity")


# Bridge calls in one job after which its pair is pinned until the job ends (bursts mode): a
# call costs two cross-core hand-offs, ~65 µs on 2 cores, where moving a thread costs ~80 µs
# once; few enough that a loop pins early, more than a short handler makes (the examples make
# a handful of calls an event).
BURST_CALLS = 16


class Affinity:
    """Assigns cores to runners round-robin and pins each runner's thread and its child:
    `always` from its first job (`settled`), else for the rest of a job with many calls
    (`burst`, `unpin`); and places the host's own threads on one core (`place_host`)."""

    def __init__(self, *, enabled: bool = True, always: bool = False, host_core: bool = False,
                 cpus: set[int] | None = None) -> None:
        self.always = always
        usable = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
        self._everywhere = set(usable)
        #: The cores pairs are spread over; empty when nothing is pinned.
        self.cores: list[int] = usable if enabled and 2 <= len(usable) < SPIN_MIN_CPUS else []
        #: The cores the host may claim for its own threads, in order of preference; empty:
        #: its threads are not placed.
        self.host_cores: tuple[int, ...] = (
            tuple(usable) if host_core and not always and 2 <= len(usable) < SPIN_MIN_CPUS
            else ())
        #: The core the host's own threads share once `place_host` ran; None: anywhere.
        self.host_core: int | None = None
        self._claim: CoreClaim | None = None
        self._placed = False
        self._assigned: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._next = 0
        self._lock = threading.Lock()

    @property
    def everywhere(self) -> frozenset[int]:
        """The cores the host's work may spread over (the apps', the front's): the process's
        own when the host was made, whatever core its threads share since."""
        return frozenset(self._everywhere)

    def core_of(self, runner: object) -> int | None:
        """The core `runner` was given (assigned on first ask); None when nothing is pinned."""
        if not self.cores:
            return None
        with self._lock:
            core = self._assigned.get(runner)
            if core is None:
                core = self.cores[self._next % len(self.cores)]
                self._next += 1
                self._assigned[runner] = core
            return core

    def pin(self, runner: object, child_pid: int, *, apart: bool = False) -> None:
        """Pin the calling thread (`runner`'s own) and its child `child_pid` to one core, or
        with `apart` the child to the next core (each end then polls on a core of its own)."""
        core = self.host_core if self._placed else self.core_of(runner)
        if core is None or not self.cores:
            return
        cores = self.cores  # a snapshot: a failed pin on another thread may empty the list
        child_core = cores[(cores.index(core) + 1) % len(cores)] if apart and core in cores \
            else core
        try:
            os.sched_setaffinity(0, {core})  # 0: the calling thread, on Linux
            os.sched_setaffinity(child_pid, {child_core})
        except ProcessLookupError:
            return  # the child already ended: its start fails on its own
        except OSError as exc:
            with self._lock:
                if not self.cores:
                    return
                self.cores = []
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self._host_cpus())
            log.warning("apps run unpinned: could not set a child's CPU affinity (%s)", exc)

    def settled(self, runner: object, child_pid: int) -> None:
        """`runner`'s child answered its first job (on the runner's thread): pin in `always`
        mode. Not during the start: the start's hand-offs gained nothing from a shared core
        (measured), and moving a thread costs ~80 µs."""
        if self.always:
            self.pin(runner, child_pid)

    def burst(self, runner: object, child_pid: int, *, apart: bool = False) -> bool:
        """A job made BURST_CALLS calls (on the runner's thread): pin the pair until the job
        ends, when the caller `unpin`s it; `apart` (its event the only one running) on two
        cores, for both ends to poll. With the host's threads placed, the runner's thread is on
        the host's core already, and a pair not apart shares it. False when nothing was
        pinned."""
        if self.always or not self.cores:
            return False
        self.pin(runner, child_pid, apart=apart)
        return bool(self.cores)  # empty again when the host may not pin

    def unpin(self, child_pid: int) -> None:
        """The calling thread back where the host's threads run, child `child_pid` on every
        core again."""
        with contextlib.suppress(OSError):  # a child that ended has nothing left to move
            os.sched_setaffinity(0, self._host_cpus())
            os.sched_setaffinity(child_pid, self._everywhere)

    def _host_cpus(self) -> set[int]:
        core = self.host_core
        return {core} if self._placed and core is not None else self._everywhere

    def place_host(self) -> None:
        """Put every thread of this process on the host's core (threads started later inherit
        it from the thread that starts them). Called once the zygote runs, which keeps every
        core, as do the children it forks. The core is the first of `host_cores` that no other
        host on this machine has claimed (`host.supervise.coreclaim`); with every one claimed,
        the threads stay on every core."""
        if not self.host_cores or self._placed:
            return
        claim = claim_core(self.host_cores)
        if claim is None:
            log.info("the host's threads run on every core: other hosts on this machine hold "
                     "a core each (%s)", ", ".join(map(str, self.host_cores)))
            return
        try:
            _set_threads({claim.cpu})
        except OSError as exc:
            claim.release()
            _set_threads(self._everywhere, quiet=True)
            log.warning("the host's threads run on every core: could not place them (%s)", exc)
            return
        self._claim, self.host_core, self._placed = claim, claim.cpu, True

    def release_host(self) -> None:
        """Every thread of this process on every core again (the host stops), and its core
        free for another host."""
        if self._placed:
            self._placed = False
            _set_threads(self._everywhere, quiet=True)
        if self._claim is not None:
            self._claim.release()
            self._claim, self.host_core = None, None

    def starting(self, pid: int) -> None:
        """A child the host is starting from one of its threads: on the host's core until its
        start is done (`spread`), so the start's hand-offs (its handshake and load) are direct
        switches rather than cross-core wake-ups (~0.3 ms of a 2.8 ms start here)."""
        core = self.host_core
        if self._placed and core is not None:
            with contextlib.suppress(OSError):  # it ended already: its start fails on its own
                os.sched_setaffinity(pid, {core})

    def aside(self, pid: int) -> None:
        """A process whose work should leave the host's core alone (the zygote: the children it
        forks ahead of need prime themselves there): on every other core."""
        core = self.host_core
        if self._placed and core is not None and len(self._everywhere) > 1:
            with contextlib.suppress(OSError):  # it ended already: nothing to move
                os.sched_setaffinity(pid, self._everywhere - {core})

    def spread(self, pid: int) -> None:
        """A process the host started from one of its threads (which it inherited the host's
        core from) may run on every core: its threads, started after this, inherit that."""
        if self._placed:
            with contextlib.suppress(OSError):  # it ended already: nothing to move
                os.sched_setaffinity(pid, self._everywhere)


def _set_threads(cpus: set[int], *, quiet: bool = False) -> None:
    """Every thread of this process on `cpus`; a thread that ended meanwhile is skipped."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            continue
        except OSError:
            if not quiet:
                raise
