"""The zygote: a clean process that has imported the runtime and forks app children.

The host starts it as a fresh interpreter (`python -I -m sandbox.zygote FD`) with an empty
environment, so it holds no host secret: no signing key, no token but the ones it passes on
unread in a child's channel (it never sees them: tokens travel on the child's own pipe). It
enters a new, empty network namespace once, so no child it forks is ever on the host's network
(when the host is not root, inside a user namespace of its own, which is what lets it give each
child a PID namespace of its own: `confine.fork_in_own_pid_namespace`); each child then enters
a network namespace of its own (`confine.confine_early`), so no two apps share one.

Control protocol on the AF_UNIX SOCK_SEQPACKET descriptor FD (one JSON message per packet):
  host -> zygote: {"op": "fork", "id": n, "limits": {...}, "cgroup": path or null}
                  + SCM_RIGHTS [chan_in, chan_out, err]   (the child joins `cgroup` first)
                  {"op": "kill", "pid": p}   (SIGKILL child p, if it is one not yet reaped)
  zygote -> host: {"op": "ready", "pid": p, "netns": bool}
                  {"op": "forked", "id": n, "pid": p}
                  {"op": "failed", "id": n, "error": text}   (fork(2) refused: no child)
                  {"op": "exit", "pid": p, "status": wait status}

How it forks: with the C library's fork(2) (through ctypes), not `os.fork()`. Python's fork
also runs the interpreter's at-fork hooks in the child, chiefly `threading._after_fork`, which
rebuilds the thread registry and its locks; in a child of this process that work writes (and
so copies from the zygote) about 0.15 MiB of pages the child then keeps. None of it is needed
here: the zygote is single-threaded (`main` checks, and `confine` checks the child again), so
there is no other thread whose locks or state the child could inherit, and the GIL is free
while ctypes makes the call. What the hooks would do that does matter is done by hand:
`random` is re-seeded in each child, so two apps never draw the same sequence.
"""
from __future__ import annotations

import array
import ctypes
import gc
import json
import os
import random
import select
import signal
import socket
import sys
from typing import Any

from sandbox import confine, heapfill, native, runtime

MAX_CONTROL_MESSAGE = 4096  # one control packet; the host only sends small JSON here


def _child(fds: list[int], zygote_pid: int, req: dict[str, Any], ctl: socket.socket) -> None:
    ctl.close()
    random.seed()  # what os.fork's hook would do: the zygote's state is every child's
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    lim = req.get("limits", {})
    # The app's identity and the layers after it come with the host's hello
    # (`runtime._serve` -> `confine.take_identity`): a pre-forked child knows no app yet.
    # No devnull_fd: the child opens a /dev/null of its own (`confine.confine_early`). One the
    # zygote opened would be a single open file description every app's child shares, and its
    # flags a channel between apps. For the same reason the zygote passes a child nothing but
    # that child's own three pipe ends.
    report = confine.confine_early(
        chan_in=fds[0], chan_out=fds[1], err_fd=fds[2],
        parent_pid=zygote_pid,
        limits=confine.Limits(
            memory_mib=int(lim.get("memory_mib", 256)),
            cpu_seconds=int(lim.get("cpu_seconds", 3600)),
            max_fds=int(lim.get("max_fds", 32)),
            memory_cgroup=str(req.get("cgroup") or ""),
        ),
        # The zygote's network namespace is every child's: each enters one of its own, as it
        # does its IPC namespace (one shared, apps met there: a netlink socket takes datagrams
        # from any other socket of its namespace, by port number, with no uid check).
        netns_done=False,
    )
    runtime.serve(report)


def main() -> None:
    ctl_fd = int(sys.argv[1])
    ctl = socket.socket(fileno=ctl_fd)
    # Ctrl-C at a terminal reaches the whole foreground process group. The host alone decides
    # when the zygote and its children stop (it closes their pipes; PDEATHSIG covers a dead
    # host), so they ignore it: no second traceback, no child dying before the host settles it.
    # The children forked from here inherit the setting.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    confine.prepare()
    # Python put LC_CTYPE back (PEP 538); empty the environment once here, so every child
    # starts with an empty one and `confine` only has to check it.
    os.environ.clear()
    # Die with the host: a zygote without a host is an orphan that could fork forever.
    native.libc().prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    host_pid = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    if os.getppid() != host_pid:
        os._exit(1)
    runtime.warm_up()
    if confine.thread_count() != 1:
        os._exit(1)  # a raw fork is only sound in a single-threaded process (module docstring)
    # Move everything imported so far out of the collector's reach: a collection in a child
    # would otherwise touch (and copy) every object page it shares with the zygote.
    gc.collect()
    # Fill the allocator's holes, so a child's allocations go to fresh pages (sandbox.heapfill)
    _ballast = heapfill.fill()  # kept alive: main never returns
    gc.freeze()
    netns = confine.unshare_network()
    me = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _tell(ctl, {"op": "ready", "pid": me, "netns": netns})
    # No list of the children is kept here (`_kill` asks the kernel instead): every child is a
    # fork of this process, and its stack still holds this frame. A set of live pids in it was
    # the host pid of every other app's child, readable by code that escaped RestrictedPython.
    # Every request lands in this one buffer, overwritten by the next (`_receive`). A buffer
    # per request (`socket.recv_fds`) was freed into the C heap every later child inherits: an
    # escaped app read there the last requests of other apps' forks (six of them, each by its
    # id), so between two of its own children it counted the host's forks for other apps.
    inbox = bytearray(MAX_CONTROL_MESSAGE)
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        for fd, _ev in poller.poll():
            if fd == wake_r:
                os.read(wake_r, 512)
                _reap(ctl)
                continue
            try:
                size, fds = _receive(ctl, inbox)
            except OSError:
                os._exit(0)
            if not size:
                os._exit(0)  # host closed the control channel
            req = json.loads(inbox[:size])
            inbox[:size] = bytes(size)  # the next child inherits no copy of this request
            if req.get("op") == "kill" and not fds:
                _kill(req.get("pid"))
                continue
            if req.get("op") != "fork" or len(fds) != 3:
                for f in fds:
                    os.close(f)
                continue
            # Each child is process 1 of a PID namespace of its own (`confine.CLONE_NEWPID`);
            # a kernel that refuses gets a plain fork, and the child reports the layer missing.
            pid = confine.fork_in_own_pid_namespace()
            if pid < 0:
                pid = native.libc().fork()
            if pid < 0:
                err = ctypes.get_errno()
                for f in fds:
                    os.close(f)
                _tell(ctl, {"op": "failed", "id": req.get("id"), "error": os.strerror(err)})
                continue
            if pid == 0:
                try:
                    _child(fds, me, req, ctl)
                finally:
                    os._exit(70)
            for f in fds:
                os.close(f)
            _tell(ctl, {"op": "forked", "id": req.get("id"), "pid": pid})
        _reap(ctl)


def _receive(ctl: socket.socket, inbox: bytearray) -> tuple[int, list[int]]:
    """One control packet into `inbox` (no buffer of its own, see `main`): its size and the
    descriptors it carried (at most 3: a fork's pipe ends)."""
    size, ancillary, _flags, _addr = ctl.recvmsg_into([inbox], socket.CMSG_SPACE(3 * 4))
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", data[:len(data) - len(data) % 4])
    return size, fds


def _kill(pid: object) -> None:
    """SIGKILL `pid` if it is a child of this zygote not yet reaped (a zombie is harmless to
    signal); any other number is ignored, so the host can never make this process signal one
    it does not own. The host cannot signal such a child itself by pid on a kernel without
    pidfds (the number may be reused once this process reaps it); here, before the reap, it
    still names the child.

    The kernel says whether `pid` is such a child: waitid without reaping (WNOWAIT) raises
    ChildProcessError for any process that is not an unreaped child of this one. Exact, since
    only this thread reaps, and it is here (the zygote is single-threaded).
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (ChildProcessError, OSError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # already gone: its exit is reported by the reap


def _reap(ctl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _tell(ctl, {"op": "exit", "pid": pid, "status": status})


def _tell(ctl: socket.socket, msg: dict[str, object]) -> None:
    """Send one message to the host; a host that is gone (it closed the channel, perhaps
    interrupted while this zygote was still warming up) ends the zygote quietly: there is no
    one left to serve, and a traceback on the shared terminal would only confuse."""
    try:
        ctl.send(json.dumps(msg).encode())
    except OSError:
        os._exit(0)


if __name__ == "__main__":
    main()
