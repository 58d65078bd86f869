"""A zygote that dies is replaced; its children are forgotten; a late fork is not a ghost.

Before: once the zygote died (the OOM killer's pick, a crash), every later start failed with
"zygote is gone" until the host was restarted, so one death stopped every app that restarted
or started after it (and the prefork pool stopped for good); its children stayed in the
spawner's map forever. And a fork whose reply came after its caller gave up made a child nobody
knew, whose exit, reported by pid, was kept for good (a later child given that number would
look dead at birth).

What must hold: after the zygote is killed, the next start makes a new zygote and a working
child; the replacement is bound to a thread that outlives the start's (a zygote's parent-death
signal follows the thread that started it); the old children are marked dead and dropped; a
real host's app answers its next event; a fork given up on is killed on arrival and its exit
passed on to no one.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from apphelp import install, write_app

from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner
from host.supervise.zygote_client import Zygote, ZygoteError

APP = '''
from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return 42
'''


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out: {what}"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead zygote's children, reparented, may wait to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_dead_zygote_is_replaced_from_a_thread_that_stays(tmp_path: Path) -> None:
    spawner = Spawner(use_zygote=True)
    try:
        assert spawner.zygote is not None
        old = spawner.zygote
        before = spawner.start(ChildLimits())
        os.kill(old.pid, signal.SIGKILL)
        _wait(lambda: old.proc.poll() is not None, 5.0, "the zygote to die")
        started: list[object] = []
        # A start from a thread that ends right after (as a runner's thread may).
        t = threading.Thread(target=lambda: started.append(spawner.start(ChildLimits())))
        t.start()
        t.join(30)
        assert started, "no child was started after the zygote died"
        new = spawner.zygote
        assert new is not old and spawner.zygotes_replaced == 1
        time.sleep(0.5)  # a zygote bound to the ended thread would be dead by now
        assert new.proc.poll() is None and not new.gone, "the replacement died with its thread"
        child = started[0]
        assert _alive(child.pid) and not child.has_exited()  # type: ignore[attr-defined]
        # the old zygote's child: dead with its zygote, marked so, and no longer held
        assert before.has_exited() and before.dead
        assert before.pid not in spawner._children
        child.kill("test", code="shutdown")  # type: ignore[attr-defined]
        child.close()  # type: ignore[attr-defined]
        before.close()
    finally:
        spawner.close()


def test_a_hosts_app_answers_after_its_zygote_died(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "steady", ["livechat.read"],
                            ["livechat.room_started"], APP))
    host = Host(home, config=HostConfig(watch=False, use_zygote=True, prefork=1))
    with host:
        (runner,) = host.runners.values()
        assert runner.submit("livechat.room_started", {}, 5.0).result(30) == 42
        spawner = host.spawner
        assert spawner is not None and spawner.zygote is not None
        os.kill(spawner.zygote.pid, signal.SIGKILL)
        first = runner.child
        assert first is not None
        _wait(lambda: not _alive(first.pid), 10.0, "the app's child to die with its zygote")
        # The event that finds the child dead restarts it, through a new zygote.
        deadline = time.monotonic() + 30
        while True:
            try:
                assert runner.submit("livechat.room_started", {}, 5.0).result(30) == 42
                break
            except Exception:
                assert time.monotonic() < deadline, runner.status()
                time.sleep(0.2)
        assert spawner.zygotes_replaced == 1
        assert runner.child is not first


def test_a_fork_given_up_on_is_killed_and_its_exit_passed_to_no_one() -> None:
    exits: list[tuple[int, int]] = []
    zygote = Zygote(lambda pid, status: exits.append((pid, status)))
    fds = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
    try:
        try:
            zygote.fork((fds[0][0], fds[1][1], fds[2][1]), ChildLimits().as_dict(),
                        timeout=0.0)
        except ZygoteError:
            pass  # given up on before its reply: the usual case with no time at all
        else:
            return  # answered at once (cannot happen with a zero wait, but harmless)
        for r, w in fds:
            os.close(r)
            os.close(w)
        fds = []
        time.sleep(2.0)  # the child: forked, found abandoned, killed, reaped
        assert exits == [], f"the abandoned child's exit was passed on: {exits}"
        assert zygote._orphans == set()
    finally:
        for r, w in fds:
            os.close(r)
            os.close(w)
        zygote.close()


def test_no_child_of_a_dead_zygote_is_handed_out_from_the_pool() -> None:
    """The pool's ready children die with their zygote, and nobody reports it (the zygote
    reported its children's exits): a start took one before any fork replaced the zygote, and
    the app's start then failed its handshake and backed off for a death it did not cause."""
    spawner = Spawner(use_zygote=True, prefork=2)
    try:
        assert spawner.pool is not None and spawner.pool.wait_ready(30)
        old = spawner.zygote
        assert old is not None
        os.kill(old.pid, signal.SIGKILL)
        _wait(lambda: old.proc.poll() is not None, 5.0, "the zygote to die")
        time.sleep(0.2)  # the pooled children are killed by their parent-death signal
        child = spawner.start(ChildLimits())
        assert _running(child.pid) and not child.has_exited(), \
            "a dead zygote's child was handed out"
        assert spawner.zygote is not old
        child.kill("test", code="shutdown")
        child.close()
    finally:
        spawner.close()
