"""Lifecycle hooks for a serving host's apps, and the end of a disabled or uninstalled app's
runner, which hears its own hook first.

An install change recorded by another process (`app disable`, `uninstall`, `update`, settings)
queues a hook (`InstallStore.pending_hooks`); the host's sync (`Host.sync_installs`) hands each to
its app and marks it done. An app whose runner ends (disabled, uninstalled) hears its own
`disable`/`uninstall` hook before its child stops, which may take up to the event deadline.

Why this is its own room: the watcher (`host.rounds`) that syncs must never wait on an app.
It waited for an ending app's hook in its own thread (up to the deadline and 5 s more, per
hook): an app whose `on_disable` used its deadline held up every install change after it, so
a second app the operator disabled meanwhile kept receiving events for that long, and no token
was renewed. From the watcher (`wait=False`) each ending runs on a thread of its own; a start's
sync (`wait=True`) still waits, as before.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from host.apps.installs import InstallStore, LifecycleEvent
from host.store.pool import release_thread
from host.supervise.supervisor import AppRunner

log = logging.getLogger("stockade.host")
FINAL_HOOKS = ("disable", "uninstall")


class LifeHooks:
    """One host's lifecycle hooks. `stop(runner, why)` stops an ended app's runner (the host's:
    its clients, its audit record); `failed()` asks the watcher to sync again soon (an ending
    that met a store error left its hook pending, which the next sync settles)."""

    def __init__(self, installs: InstallStore, deadline_s: float,
                 stop: Callable[[AppRunner, str], None], failed: Callable[[], None]) -> None:
        self.installs = installs
        self.deadline_s = deadline_s
        self._stop = stop
        self._failed = failed
        self._out: set[int] = set()  # hooks handed over and not yet done (seq)
        self._lock = threading.Lock()
        # Runners of disabled or uninstalled apps being ended (their hook runs first): the
        # host's `stop` ends them too; their thread, when one ends them (joined at stop).
        self._ending: dict[AppRunner, threading.Thread | None] = {}

    def ending(self) -> list[AppRunner]:
        with self._lock:
            return list(self._ending)

    def begin_end(self, runner: AppRunner) -> None:
        """`runner` left the running set: it is ended by `end` (or the host's stop)."""
        with self._lock:
            self._ending[runner] = None

    def end(self, ending: list[tuple[AppRunner, str]], *, wait: bool,
            final: bool = True) -> None:
        """End each runner, after its own final hook (`final`; not for an app starting again
        in a new runner): here (`wait`), or each on a thread of its own, so the caller (the
        watcher) waits on no app."""
        for runner, why in ending:
            if wait:
                self._end(runner, why, final)
                continue
            thread = threading.Thread(target=self._end_quietly, args=(runner, why, final),
                                      name=f"stockade-end-{runner.app_id}", daemon=True)
            with self._lock:
                self._ending[runner] = thread
            thread.start()

    def _end(self, runner: AppRunner, why: str, final: bool) -> None:
        try:
            if final and runner.child is not None and not runner.child.dead:
                # the app hears its own disable/uninstall hook before its child stops (its
                # bridge calls are already refused: the install is not enabled)
                for hook in self.installs.pending_hooks(runner.install_id):
                    if hook.hook in FINAL_HOOKS:
                        self.deliver(runner, hook.hook, dict(hook.detail))
                        self.installs.mark_hook_done(hook.seq)
        finally:  # whatever marking the hook raised (a store error): the child stops
            self._stop(runner, why)
            with self._lock:
                self._ending.pop(runner, None)

    def _end_quietly(self, runner: AppRunner, why: str, final: bool) -> None:
        try:
            self._end(runner, why, final)
        except Exception:
            log.exception("app %s stopped, but its hook could not be settled (trying again)",
                          runner.app_id)
            self._failed()
        finally:
            # This thread ends: its store connections go back to the pools. Left to the
            # thread, each stayed open for the host's life (every store keeps what it opened
            # until it closes): two or three a disable, two descriptors each (DESIGN rule 13).
            release_thread()

    def run_pending(self, runners: Mapping[str, AppRunner], hooks: Sequence[LifecycleEvent],
                    *, wait: bool) -> None:
        """Hand each of `hooks` to its app (`wait`: and wait for it); a hook whose app is not
        running (or runs another generation) is done. An ending app's own hooks are its
        ending's to deliver. `hooks`: pending when the sync began, before it read the records
        `runners` were matched to (a hook read later may be for a change they do not hold)."""
        with self._lock:
            ending = {r.install_id for r in self._ending}
        handed: list[tuple[AppRunner, LifecycleEvent]] = []
        for hook in hooks:
            runner = runners.get(hook.install_id)
            if hook.install_id in ending and runner is None:
                continue
            if runner is None or hook.generation != runner.install.generation:
                self.installs.mark_hook_done(hook.seq)
            else:
                handed.append((runner, hook))
        if not handed:
            return
        with self._lock:
            # Still pending now, and not out: one an earlier sync handed over may have run to
            # its end since `hooks` were read, or be running now (the watcher's, while a start
            # or an embedder syncs), and must not run twice (`_done` deletes its row, then
            # takes its seq out of `_out` under this lock: read here, it is one or other).
            pending = {h.seq for h in self.installs.pending_hooks()}
            handed = [(r, h) for r, h in handed if h.seq in pending and h.seq not in self._out]
            self._out.update(h.seq for _r, h in handed)
        if wait:
            try:
                for runner, hook in handed:
                    self.deliver(runner, hook.hook, dict(hook.detail))
                    self.installs.mark_hook_done(hook.seq)
            finally:  # done ones are no longer pending; one that raised, and those after it,
                # are, for a later sync
                with self._lock:
                    self._out.difference_update(h.seq for _r, h in handed)
            return
        for runner, hook in handed:  # done when its outcome is (`_done`)
            fut = runner.submit(hook.hook, {"hook": hook.hook, **dict(hook.detail)},
                                self.deadline_s)
            fut.add_done_callback(functools.partial(self._done, hook.seq))

    def _done(self, seq: int, _outcome: object) -> None:
        # Its row goes before its seq leaves `_out` (under the lock): a sync that finds it out
        # of `_out` reads it done (`run_pending`). The write is not under the lock, which the
        # running set's changes wait for (`begin_end`).
        with contextlib.suppress(Exception):
            self.installs.mark_hook_done(seq)
        with self._lock:
            self._out.discard(seq)

    def deliver(self, runner: AppRunner, hook: str, detail: dict[str, Any]) -> None:
        fut = runner.submit(hook, {"hook": hook, **detail}, self.deadline_s)
        with contextlib.suppress(Exception):
            fut.result(self.deadline_s + 5)

    def join(self, timeout: float) -> None:
        """Wait (each at most `timeout`) for the endings under way (the host stops)."""
        with self._lock:
            threads = [t for t in self._ending.values() if t is not None]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
