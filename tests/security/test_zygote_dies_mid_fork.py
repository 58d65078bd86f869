"""A zygote killed while a fork is in flight (the OOM killer's likeliest moment: a fork
allocates) neither ends the prefork pool for good nor fails the start that asked.

Before: the pool's filler thread, whose fork request the dead zygote never answered, logged
"could not fork a child" and returned, so the pool stayed empty for the host's life (every
later start forked on demand), although the zygote was replaced at the next start; the same
for any one refused fork (EAGAIN at a pids limit, ENOMEM), however brief the shortage.

Attacked with a real zygote: stopped (SIGSTOP) so that a fork request is surely in flight,
then SIGKILLed, as the OOM killer would.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from host.supervise.child import Child, ChildLimits
from host.supervise.spawner import Spawner


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out: {what}"
        time.sleep(0.02)


def test_the_pool_refills_after_its_zygote_died_mid_fork() -> None:
    spawner = Spawner(use_zygote=True, prefork=1)
    try:
        pool, old = spawner.pool, spawner.zygote
        assert pool is not None and old is not None and pool.wait_ready(30)
        os.kill(old.pid, signal.SIGSTOP)  # the refill's fork request waits in its socket
        taken = spawner.start(ChildLimits())
        spawner.started()
        _wait(lambda: bool(old._pending), 5.0, "the refill's fork request")
        os.kill(old.pid, signal.SIGKILL)
        _wait(lambda: old.proc.poll() is not None, 5.0, "the zygote to die")
        # No start comes: the pool alone must notice, replace the zygote and fill again.
        assert pool.wait_ready(10) and spawner.zygote is not old, \
            "the pool stayed empty after its zygote died mid-fork"
        child = spawner.start(ChildLimits())
        spawner.started()
        assert not child.has_exited() and child.pid != taken.pid
        for c in (taken, child):
            c.kill("test", code="shutdown")
            c.close()
    finally:
        spawner.close()


def test_a_start_whose_fork_the_dead_zygote_never_answered_gets_a_child() -> None:
    """The start, not the app, met the zygote's death: before, it raised "zygote is gone", and
    the host counted it as the app's failure (its event failed, its restart backed off)."""
    spawner = Spawner(use_zygote=True)
    try:
        old = spawner.zygote
        assert old is not None
        os.kill(old.pid, signal.SIGSTOP)
        got: list[object] = []
        t = threading.Thread(target=lambda: got.append(_start(spawner)))
        t.start()
        _wait(lambda: bool(old._pending), 5.0, "the start's fork request")
        os.kill(old.pid, signal.SIGKILL)
        t.join(30)
        assert len(got) == 1
        child = got[0]
        assert isinstance(child, Child), f"the start failed: {child!r}"
        assert spawner.zygote is not old and not child.has_exited()
        child.kill("test", code="shutdown")
        child.close()
    finally:
        spawner.close()


def _start(spawner: Spawner) -> object:
    try:
        return spawner.start(ChildLimits())
    except Exception as exc:  # what the start raised is the finding
        return exc
