"""Creates confined app children: through the zygote (fast) or a fresh interpreter (the
fallback), optionally from a pool forked ahead of need, and hears about their exits.

What a child is once started (its channel, deadline and death) is `host.supervise.child`.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from host.supervise import memcg
from host.supervise.child import Child, ChildLimits
from host.supervise.prefork import Prefork
from host.supervise.zygote_client import Zygote, ZygoteError

log = logging.getLogger(__name__)

# How long a replacement zygote may take to say it is ready (it imports the sandbox: ~0.1 s).
ZYGOTE_START_TIMEOUT_S = 30.0


class Spawner:
    """Creates confined children, through the zygote (fast) or a fresh interpreter.

    With `prefork` > 0 (zygote only), that many children with `prefork_limits` are forked
    ahead of need and handed out by `start` (see `host.supervise.prefork`).
    """

    def __init__(self, use_zygote: bool = True, *, prefork: int = 0,
                 prefork_limits: ChildLimits | None = None) -> None:
        # Zygote children not yet reported exited, by pid: the zygote names an exit by pid
        # alone. Each entry leaves with that report, so a dead child (its Popen, its frame
        # buffer: up to a frame of what it sent) is never kept here. A fresh interpreter's
        # exit comes from its own Popen waiter instead, and it never enters this map.
        self._children: dict[int, Child] = {}
        self._lock = threading.Lock()
        self._early: dict[int, int] = {}  # exits the zygote reported before `_fork` had the pid
        # A zygote that died (the OOM killer's pick, a crash) is replaced at the next fork, made
        # on a thread kept for that: a zygote's parent-death signal follows the thread that
        # started it, so one started from a runner's thread would die (with every child) when
        # that runner's thread ends. `on_new_zygote(pid)`: the host places it off its core.
        self._zygote_lock = threading.Lock()
        self._keeper: ThreadPoolExecutor | None = None
        self._closing = False
        self.on_new_zygote: Callable[[int], None] | None = None
        self.zygotes_replaced = 0
        self._gone_children = 0  # ended by `_gone` before the replacement (for its log line)
        # A memory cgroup per child where this host can make them (root, a writable memory
        # hierarchy: `host.supervise.memcg`); the reason when it cannot (the doctor shows it).
        # Before the pool: its children are forked with theirs.
        self.memory_cgroups, self.memory_cgroup_reason = memcg.for_host()
        # Made once what its callbacks use is set (`_gone` may run before `__init__` ends).
        self.zygote: Zygote | None = Zygote(self._on_exit, self._gone) if use_zygote else None
        self._pool_limits = prefork_limits or ChildLimits()
        self.pool: Prefork[Child] | None = None
        if self.zygote is not None and prefork > 0:
            self.pool = Prefork(lambda: self._fork(self._pool_limits), prefork)

    def _on_exit(self, pid: int, status: int) -> None:
        with self._lock:
            child = self._children.pop(pid, None)
            if child is None:
                self._early[pid] = status
                return
        self._exited(child, status)

    def _exited(self, child: Child, status: int) -> None:
        """`child` was reaped: its cgroup goes (saying whether its memory limit killed it)."""
        oom = False
        if self.memory_cgroups is not None and child.memory_cgroup is not None:
            oom = self.memory_cgroups.release(child.memory_cgroup)
        child.exited(status, memory_limit=oom)

    def start(self, limits: ChildLimits) -> Child:
        """A confined child waiting for its handshake (from the pool when one is ready)."""
        if self.pool is not None and limits == self._pool_limits:
            # A dead zygote's pooled children died with it and nobody reports their exits (the
            # zygote did): replacing it first marks them ended, so `take` discards them instead
            # of handing one to an app whose start would fail for a death it did not cause.
            self._live_zygote()
            child = self.pool.take()
            if child is not None:
                return child
        return self._fork(limits)

    def started(self) -> None:
        """The start that called `start` is done: the pool may fork a replacement."""
        if self.pool is not None:
            self.pool.started()

    def _fork(self, limits: ChildLimits) -> Child:
        zygote = self._live_zygote() if self.zygote is not None else None
        try:
            return self._fork_on(zygote, limits)
        except (ZygoteError, OSError):
            # A zygote that died under this fork (the OOM killer's likeliest moment: a fork
            # allocates) never answered it. The start met that death, not the app: once more,
            # through its replacement. Before, the app's event failed and its restart backed
            # off for it. A zygote alive that refused (EAGAIN) or was slow is the answer.
            if zygote is None or self._closing or not _dead(zygote):
                raise
        return self._fork_on(self._live_zygote(), limits)

    def _fork_on(self, zygote: Zygote | None, limits: ChildLimits) -> Child:
        h2c_r, h2c_w = os.pipe2(os.O_CLOEXEC)
        c2h_r, c2h_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        session = secrets.token_hex(16)
        popen: subprocess.Popen[bytes] | None = None
        cgroup: str | None = None
        try:
            if self.memory_cgroups is not None:
                cgroup = self.memory_cgroups.make(limits.memory_mib)
            if zygote is not None:
                pid = zygote.fork((h2c_r, c2h_w, err_w), limits.as_dict(), cgroup=cgroup)
            else:
                popen = subprocess.Popen(
                    [sys.executable, "-I", "-m", "sandbox.child", str(h2c_r), str(c2h_w),
                     str(err_w), str(os.getpid()), str(limits.memory_mib),
                     str(limits.cpu_seconds), str(limits.max_fds),
                     *([cgroup] if cgroup is not None else [])],
                    pass_fds=(h2c_r, c2h_w, err_w), env={}, cwd="/",
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True,
                    process_group=0,  # out of the terminal's Ctrl-C, like the zygote
                )
                pid = popen.pid
        except BaseException:
            # No child holds the other ends: a refused fork must not leak three descriptors
            # per attempt (a runner retrying with backoff would run the host out of them).
            for fd in (h2c_w, c2h_r, err_r):
                os.close(fd)
            if cgroup is not None and self.memory_cgroups is not None:
                self.memory_cgroups.release(cgroup)  # no child joined it (one that did: `close`)
            raise
        finally:
            for fd in (h2c_r, c2h_w, err_w):
                os.close(fd)
        child = Child(pid=pid, session_id=session, to_child=h2c_w, from_child=c2h_r,
                      err_fd=err_r, popen=popen,
                      kill_by_parent=None if zygote is None else lambda: zygote.kill(pid),
                      memory_cgroups=self.memory_cgroups if cgroup is not None else None,
                      memory_cgroup=cgroup)
        if popen is not None:
            # Not in `_children`: only this thread needs the child, and it lets go once the
            # process has exited, so a dead child the caller closed and dropped is freed.
            threading.Thread(target=self._wait_popen, args=(child, popen), daemon=True).start()
            return child
        with self._lock:
            early = self._early.pop(pid, None)
            if early is None:
                self._children[pid] = child
        if early is not None:
            self._exited(child, early)
        return child

    def _live_zygote(self) -> Zygote:
        """The zygote, replaced first if it died (its children died with it: PDEATHSIG)."""
        with self._zygote_lock:
            old = self.zygote
            assert old is not None
            if not _dead(old) or self._closing:
                return old  # closing: its fork fails as "gone", as before
            if self._keeper is None:
                # One worker, idle between replacements but never ended before `close`: the
                # thread every replacement zygote's parent-death signal is bound to.
                self._keeper = ThreadPoolExecutor(1, thread_name_prefix="stockade-zygote")
            new = self._keeper.submit(Zygote, self._on_exit, self._gone).result(
                ZYGOTE_START_TIMEOUT_S)
            # Those `_gone` has not ended yet, and those it has.
            orphans, self._gone_children = self._end_children() + self._gone_children, 0
            self.zygote = new
            self.zygotes_replaced += 1
        old.close()
        log.warning("the zygote died; replaced (pid %d), %d of its children ended with it",
                    new.pid, orphans)
        if self.on_new_zygote is not None:
            self.on_new_zygote(new.pid)
        return new

    def _gone(self, zygote: Zygote) -> None:
        """The zygote's channel closed. If it died (not closed by this spawner, nor replaced
        already), its children are ended now: before, they stayed live in the host's eyes until
        the next fork, so every app's next event was written to a dead child and failed."""
        with self._zygote_lock:
            if zygote is getattr(self, "zygote", None) and not self._closing:
                self._gone_children += self._end_children()

    def _end_children(self) -> int:
        """Mark every child of the current zygote ended (under `_zygote_lock`): dead by their
        parent-death signal (killed here too, by pidfd, in case one is not yet: a dying process
        closes its files first), never to be reported by anyone. A runner accounts the death
        at its next event (`zygote_died`) and runs that event in a new child."""
        with self._lock:
            orphans = list(self._children.values())
            self._children.clear()
            self._early.clear()
        for child in orphans:
            child.kill("its zygote died", code="zygote_died")
            self._exited(child, signal.SIGKILL)  # its cgroup: now, or once it is gone
        return len(orphans)

    def close(self) -> None:
        with self._zygote_lock:
            self._closing = True
        if self.pool is not None:
            self.pool.close()
        if self.zygote is not None:
            self.zygote.close()
        if self._keeper is not None:
            self._keeper.shutdown(wait=False)
        if self.memory_cgroups is not None:
            self.memory_cgroups.close()  # its children are gone or going (their zygote is)

    def _wait_popen(self, child: Child, popen: subprocess.Popen[bytes]) -> None:
        self._exited(child, _returncode_to_status(popen.wait()))


def _dead(zygote: Zygote) -> bool:
    # Its exit is seen by the listener (socket closed) or, a moment earlier, by wait.
    return zygote.gone or zygote.proc.poll() is not None


def _returncode_to_status(rc: int) -> int:
    return (-rc) & 0x7F if rc < 0 else (rc & 0xFF) << 8
