"""An escaped app cannot fill its uid's queue of pending signals (DESIGN rule 5: an escaped app
hurts only itself, never the host, never memory outside its own limits).

The finding: the filter lets a child signal its own pid (`kill`) and block signals
(`rt_sigprocmask`), and confinement left RLIMIT_SIGPENDING as the zygote had it (~96,000 here).
An escaped app that blocked a real-time signal and sent it to itself that many times kept that
many entries queued: kernel memory outside its RLIMIT_AS (~7.7 MB), counted against its uid's
pending-signal limit. Every process of that uid shares the count, and a host that is not root
gives its children its own uid: there the host's own `sigqueue()` (and any POSIX timer it would
create) failed with EAGAIN for as long as the app lived (seen with a real zygote of an
unprivileged host: the host's SigQ 96367/96367). Now every child has no room for a queued signal
(`confine.SIGPENDING_LIMIT`, set with the other limits in `confine_early`).

Shown with a real zygote child running the attack unrestricted (`escapezygote`), as root: the
child's queue as the kernel reports it (`/proc/<pid>/status`, SigQ), and a process of the app's
own uid, which stands for the host of a non-root install, queueing a signal of its own.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import resource
import signal
from pathlib import Path

import pytest
from escapezygote import IS_ROOT, escaped_spawner, run_escaped, start_app

from host.supervise.child import Child
from host.supervise.identities import APP_UID_BASE

APP_UID = APP_UID_BASE + 0xFE50

# Block SIGRTMIN, then send it to this process (pid 1 of its own namespace, the only pid the
# filter lets `kill` name) as many times as the queue could hold before the fix.
FILL = '''
ctypes = sys.modules["ctypes"]
signal = sys.modules["signal"]
libc = ctypes.CDLL(None, use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})
sent = sum(1 for _ in range(%d) if libc.syscall(62, 1, signal.SIGRTMIN) == 0)
raise Exception("REPORT " + repr(sent))
'''


def _queued(pid: int) -> int:
    """How many signals wait in the queue of `pid`'s uid (SigQ's first figure)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^SigQ:\t(\d+)/\d+$", status, re.M)
    assert found, status
    return int(found.group(1))


def _queue_one_as(uid: int) -> str:
    """In a fork that takes `uid`, queue one real-time signal (blocked) to itself: "ok", or the
    errno's name when the kernel refuses."""
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # ---- the process of the app's uid ----
        answer = "crashed"
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            libc = ctypes.CDLL(None, use_errno=True)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})
            rc = libc.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_void_p(0))
            answer = "ok" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
        finally:
            os.write(out_w, answer.encode())
            os._exit(0)
    os.close(out_w)
    try:
        return os.read(out_r, 64).decode()
    finally:
        os.close(out_r)
        os.waitpid(pid, 0)


def test_an_escaped_app_queues_no_signal_and_leaves_its_uids_queue_to_others(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert IS_ROOT, "CI runs as root here: the app's own uid, and /proc/<pid>/status, need it"
    assert _queue_one_as(APP_UID) == "ok"  # control: the uid's queue has room
    # what a child inherited from the zygote before the fix (the zygote has the host's limits)
    tries = resource.getrlimit(resource.RLIMIT_SIGPENDING)[0] + 16
    spawner = escaped_spawner(monkeypatch, tmp_path)
    kid: Child | None = None
    try:
        kid = start_app(spawner, APP_UID)
        sent = run_escaped(kid, FILL % tries, timeout=20.0)
        assert sent > 0  # the sends themselves are allowed: a signal to its own pid
        # Before: 96367 queued (the whole limit), and the same-uid process got EAGAIN.
        assert _queued(kid.pid) == 0
        assert _queue_one_as(APP_UID) == "ok"
    finally:
        if kid is not None:
            kid.shutdown(0.5)
        spawner.close()
