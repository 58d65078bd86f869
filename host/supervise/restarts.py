"""What a dead child costs its app: the pause before its next start, and the crash-loop stop.

A runner (`host.supervise.supervisor.AppRunner`) restarts a dead child at its next job, after a
backoff that doubles while the app keeps dying and resets when an event succeeds. That bounds a
loop of consecutive deaths, but not an app that dies on every other event: each success put the
pause back to its first value, so such an app was restarted every 50 ms for as long as events
came, each death a fresh confined child (fork, confinement, load) and an audit record. So the
deaths the app caused are also counted in a sliding window, and past `CRASH_LIMIT` of them in
`CRASH_WINDOW_S` the runner stops for good (systemd's StartLimitBurst/StartLimitIntervalSec,
Erlang's maximum restart intensity): it starts no child and drops its events until the operator
acts (`stockade app enable`), and the stop is kept in the install record so a host restart does
not clear it (`InstallStore.set_crash_stop`).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from host.apps.installs import InstallStore

log = logging.getLogger("stockade.host")

# Restart backoff after a child dies: doubles from the first value up to the cap, and resets
# after a job succeeds. Guards the host against a crash loop eating a core.
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 30.0
# At most this many deaths the app caused within CRASH_WINDOW_S before its runner stops for
# good (state "crashed"). Guards the host's CPU, the audit log and the app's own users against an
# app that crash-loops below the backoff (one that dies on every other event restarts at the
# first backoff forever). Five in five minutes: a healthy app's child dies rarely (a limit hit,
# the OOM killer, now and then), far apart, and never reaches it; a loop reaches it within
# seconds to minutes, after five forks and five audit records, not thousands. A stop costs the
# operator one `app enable`, so the limit errs on the side of an app that really is broken.
CRASH_LIMIT = 5
CRASH_WINDOW_S = 300.0
# Death codes (`Child.death_code`) the app did not cause, which never count toward the limit:
# the operator's or the host's stop, the host's kill of a child whose token it revoked, the
# death of the zygote every child hangs from (the host's process, not the app's), a confinement
# layer the host's machine lacks, and a start the host's side failed. Everything else (a crash,
# a limit, a deadline, a protocol violation, a failed load, computing between events, the
# refusal budget) is the app's doing.
NOT_THE_APPS = frozenset({"stopped", "shutdown", "revoked", "zygote_died", "confinement",
                          "start_failed"})


class CrashLooping(Exception):
    """The runner stopped for crash-looping: no child starts until the operator acts."""


def counts_against_app(code: str) -> bool:
    """Whether a death with this `Child.death_code` counts toward the crash limit."""
    return code not in NOT_THE_APPS


class Restarts:
    """One runner's deaths: the restart backoff and the crash-loop window. `now` is the clock
    both are read on (monotonic seconds; a test injects its own)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.failures = 0  # deaths since an event last succeeded: what the backoff doubles on
        self.restarts = 0  # every death, counted or not (`app list`'s "restarts")
        self.next_start = 0.0  # no child starts before this (on `now`'s clock)
        # When each counted death happened, within the window only (so never more than the
        # limit's worth: bounded).
        self._counted: deque[float] = deque()

    def died(self, counts: bool) -> None:
        """A child died: pause the next start; `counts`: the app caused it (`NOT_THE_APPS`)."""
        now = self._now()
        self.failures += 1
        self.restarts += 1
        self.next_start = now + min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (2 ** (self.failures - 1)))
        if counts:
            self._counted.append(now)
            while self._counted and now - self._counted[0] > CRASH_WINDOW_S:
                self._counted.popleft()
            while len(self._counted) > CRASH_LIMIT:
                self._counted.popleft()

    def succeeded(self) -> None:
        """An event succeeded: the next death pauses for the first backoff again (the window
        is not reset: that is what lets an every-other-event crasher be caught)."""
        self.failures = 0

    def backoff_left(self) -> float:
        return max(0.0, self.next_start - self._now())

    def crash_loop(self, last_error: str) -> str | None:
        """Why the runner must stop for crash-looping (the audit record's detail and what
        `app list` shows), or None while the app's deaths stay under the limit."""
        if len(self._counted) < CRASH_LIMIT:
            return None
        span = self._counted[-1] - self._counted[0]
        return (f"stopped for crash-looping: {len(self._counted)} deaths in {span:.0f} s (limit "
                f"{CRASH_LIMIT} in {CRASH_WINDOW_S:.0f} s) until `stockade app enable`; last: "
                f"{last_error[:300]}")


def record_crash_stop(installs: InstallStore, install_id: str, app_id: str, why: str) -> None:
    """Keep the stop in the install record, so a host restart leaves the app stopped. When the
    store cannot take it, logged: the host's next sync then starts the app again (it reads the
    stop as cleared), and a loop that goes on is stopped again after as many deaths."""
    try:
        installs.set_crash_stop(install_id, why)
    except Exception:
        log.exception("app %s stopped for crash-looping, but its install record could not say so",
                      app_id)
    finally:
        installs.store.release()  # a runner's thread keeps only its call path's connections
