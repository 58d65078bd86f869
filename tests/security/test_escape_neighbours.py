"""Assume escape, aimed at the neighbours: another app's child, the host, and the machine.

Unrestricted code in a fork confined exactly as the zygote confines an app child (the same
`_confined_fork` as test_assume_escape.py) attacks a process that stands in for another app
child: a `sleep` running as the same unprivileged uid the children drop to, so the kernel's
uid checks alone would let every attack through and only the filter stands in the way. Each
attack's outcome is checked in the world afterwards too (the victim's limits, nice value and
scheduling policy, the machine's SysV objects), not only in the refusal message.

Separate forks check what must end in the process's death: an unlisted system call (the
filter is an allow-list), and a child whose host is gone after it tried to clear its
parent-death signal.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sechelp import settle_heap

from sandbox import confine
from tests.security.test_assume_escape import (
    _check,
    _confined_fork,
    _killed_by_kernel,
    _run_attacks,
)

libc = ctypes.CDLL(None, use_errno=True)
Attack = Callable[[], str]

RLIMIT_AS = 9
RLIMIT_NOFILE = 7
PRIO_PROCESS = 0
SCHED_IDLE = 5
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
F_SETOWN = 8


class _Rlimit(ctypes.Structure):
    _fields_ = (("cur", ctypes.c_uint64), ("max", ctypes.c_uint64))


class _SchedParam(ctypes.Structure):
    _fields_ = (("priority", ctypes.c_int),)


def _attacks(app_pid: int, host_pid: int) -> dict[str, Attack]:
    def prlimit(pid: int, res: int, value: int) -> Attack:
        def f() -> str:
            new = _Rlimit(value, value)
            return _check(libc.prlimit(pid, res, ctypes.byref(new), None),
                          f"prlimit({pid}, {res}, {value})")
        return f

    def setpriority(pid: int) -> Attack:
        return lambda: _check(libc.setpriority(PRIO_PROCESS, pid, 19), f"setpriority({pid})")

    def sched_idle(pid: int) -> Attack:
        def f() -> str:
            param = _SchedParam(0)
            return _check(libc.sched_setscheduler(pid, SCHED_IDLE, ctypes.byref(param)),
                          f"sched_setscheduler({pid}, SCHED_IDLE)")
        return f

    def sysv(call: Callable[[], int], what: str) -> Attack:
        return lambda: _check(call(), what)

    return {
        # another app's child: same uid, so only the filter refuses
        "prlimit_other_app_as": prlimit(app_pid, RLIMIT_AS, 16 << 20),
        "prlimit_host_nofile": prlimit(host_pid, RLIMIT_NOFILE, 8),
        "setpriority_other_app": setpriority(app_pid),
        "setpriority_host": setpriority(host_pid),
        "sched_idle_other_app": sched_idle(app_pid),
        "sched_idle_host": sched_idle(host_pid),
        "ptrace_attach_other_app": lambda: _check(libc.ptrace(16, app_pid, 0, 0),
                                                  "ptrace(ATTACH, app)"),
        "kill_other_app": lambda: _check(libc.kill(app_pid, signal.SIGKILL), "kill(app)"),
        "fcntl_setown_other_app": lambda: _check(
            libc.fcntl(confine.CHANNEL_OUT_FD, F_SETOWN, app_pid), "fcntl(F_SETOWN, app)"),
        # memory and channels outside every limit and every gate
        "shmget": sysv(lambda: libc.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o600), "shmget"),
        "msgget": sysv(lambda: libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600), "msgget"),
        "semget": sysv(lambda: libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600), "semget"),
        # outliving the host, and reopening itself to its uid
        "prctl_clear_pdeathsig": lambda: _check(libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0),
                                                "prctl(PR_SET_PDEATHSIG, 0)"),
        "prctl_set_dumpable": lambda: _check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0),
                                             "prctl(PR_SET_DUMPABLE, 1)"),
        "setrlimit_own_nofile": prlimit(0, RLIMIT_NOFILE, 4),
    }


ATTACK_NAMES = sorted(_attacks(1, 1))


def _sysv_ids() -> set[str]:
    ids: set[str] = set()
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        ids |= {f"{kind}:{line.split()[1]}" for line in lines if line.strip()}
    return ids


def _victim_state(pid: int) -> dict[str, Any]:
    limits = Path(f"/proc/{pid}/limits").read_text()
    as_line = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"as": as_line.split()[3], "nice": stat[16], "policy": stat[38],
            "alive": os.waitpid(pid, os.WNOHANG) == (0, 0)}


@pytest.fixture(scope="module")
def neighbour_results() -> dict[str, Any]:
    # the other app's child: runs as the uid every app child drops to (confine.NOBODY_UID)
    victim = subprocess.Popen(["sleep", "60"], user=confine.NOBODY_UID,
                              group=confine.NOBODY_GID, extra_groups=[])
    try:
        before = _victim_state(victim.pid)
        ipc_before = _sysv_ids()
        attacks = _attacks(victim.pid, os.getpid())
        results, status = _confined_fork(lambda: _run_attacks(attacks))
        results["__status__"] = status
        results["__victim_before__"] = before
        results["__victim_after__"] = _victim_state(victim.pid)
        results["__new_sysv__"] = sorted(_sysv_ids() - ipc_before)
        return results
    finally:
        victim.kill()
        victim.wait()


def test_neighbour_fork_ran(neighbour_results: dict[str, Any]) -> None:
    assert "__crash__" not in neighbour_results, neighbour_results.get("__crash__")
    status = neighbour_results["__status__"]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert set(ATTACK_NAMES) <= set(neighbour_results)


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_neighbour_attack_refused(neighbour_results: dict[str, Any], attack: str) -> None:
    outcome = neighbour_results[attack]
    assert outcome.startswith("refused"), f"{attack}: {outcome}"


def test_other_app_untouched(neighbour_results: dict[str, Any]) -> None:
    """The world, not the messages: the other app's limits, nice and policy are unchanged."""
    assert neighbour_results["__victim_after__"] == neighbour_results["__victim_before__"]
    assert neighbour_results["__victim_after__"]["alive"] is True


def test_no_sysv_object_left(neighbour_results: dict[str, Any]) -> None:
    assert neighbour_results["__new_sysv__"] == []


# uname, getrusage, sysinfo, getuid: harmless calls the runtime never makes
@pytest.mark.parametrize("nr", [63, 98, 99, 102])
def test_unlisted_syscall_kills_the_process(nr: int) -> None:
    """The filter is an allow-list: a harmless call nobody listed is still death by SIGSYS."""
    buf = ctypes.create_string_buffer(4096)
    sig = _killed_by_kernel(lambda: _discard(libc.syscall(nr, buf, 0)))
    assert sig == signal.SIGSYS


def _discard(_value: object) -> None:
    """Call-site helper for lambdas that must return None."""


def _state(pid: int) -> str | None:
    """The process's state letter, or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _live_confined_child() -> tuple[int, int, int]:
    """Fork a stand-in host that forks a confined app child; the child tries to clear its
    parent-death signal, reports, and sleeps. Returns (host pid, child pid, prctl's result)."""
    rep_r, rep_w = os.pipe()
    host = os.fork()
    if host == 0:  # ---- stands in for the host (or zygote) that forked the app child ----
        try:
            os.close(rep_r)
            me = os.getpid()
            chan_r, _chan_w = os.pipe()
            _err_r, err_w = os.pipe()
            if os.fork() == 0:  # ---- the app child ----
                try:
                    settle_heap()
                    devnull = os.open("/dev/null", os.O_RDWR)
                    netns = confine.unshare_network()
                    confine.confine(chan_in=chan_r, chan_out=rep_w, err_fd=err_w,
                                    devnull_fd=devnull, parent_pid=me,
                                    limits=confine.Limits(), netns_done=netns)
                    rc = libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
                    os.write(confine.CHANNEL_OUT_FD, json.dumps(
                        {"pid": os.getpid(), "rc": rc}).encode() + b"\n")
                    while True:
                        time.sleep(1)
                finally:
                    os._exit(70)
            os.close(rep_w)
            while True:
                time.sleep(1)
        finally:
            os._exit(0)
    os.close(rep_w)
    try:
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(rep_r, 256)
            if not chunk:
                raise AssertionError("the confined child never reported")
            line += chunk
    except BaseException:
        _end(host)
        raise
    finally:
        os.close(rep_r)
    report = json.loads(line)
    return host, int(report["pid"]), int(report["rc"])


def _end(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_child_cannot_clear_death_signal_and_dies_with_its_host() -> None:
    """Escaped code clears PR_SET_PDEATHSIG, then its host is killed: the child must be gone."""
    host, child, rc = _live_confined_child()
    try:
        assert rc == -1, "prctl(PR_SET_PDEATHSIG, 0) was allowed"
        _end(host)
        deadline = time.monotonic() + 3
        while _state(child) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _state(child) in (None, "Z"), "the child outlived its host"
    finally:
        _end(host)
        if _state(child) not in (None, "Z"):
            os.kill(child, signal.SIGKILL)


def test_child_has_an_ipc_namespace_of_its_own() -> None:
    """SysV objects die with the child and no other app shares them: two live children and
    the host each have a different IPC namespace (read by the kernel, from /proc)."""
    first = _live_confined_child()
    second = _live_confined_child()
    try:
        spaces = {os.readlink(f"/proc/{pid}/ns/ipc") for pid in (os.getpid(), first[1],
                                                                  second[1])}
        assert len(spaces) == 3, spaces
    finally:
        for host, child, _rc in (first, second):
            _end(host)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
