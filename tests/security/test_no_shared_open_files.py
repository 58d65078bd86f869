"""Assume escape: no open file description is shared between two apps' children (DESIGN rule 5).

The finding: every child the zygote forked had fds 0 and 1 on ONE open file description of
/dev/null (the zygote opened it once and each child dup'ed it). Flags live on the description,
not on the descriptor, and the filter allows fcntl F_GETFL/F_SETFL, so one escaped app could set
O_APPEND/O_NONBLOCK and another read them: a channel between apps with no gate and no audit.

These tests start two real children of two different apps (their own uids when the test runs
as root) through the real `Spawner` in each way the host starts one (zygote, the zygote's
pre-fork pool, fresh interpreters), and ask the kernel, not the children:

- kcmp(KCMP_FILE) on every pair (fd of one child, fd of the other): never the same open file;
- the flags escaped code would use: the test takes the very description behind each of one
  child's descriptors (pidfd_getfd, which hands the caller the same open file description the
  child's fd is, exactly what app code in that child reaches with fcntl), flips O_APPEND and
  O_NONBLOCK on it, and reads the other child's descriptors' flags: unchanged;
- no writable shared mapping either (the other way two processes share bytes after a fork).
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.clock import SystemClock
from host.keys import tokens
from host.keys.keyring import Keyring
from host.supervise.child import Child, ChildLimits
from host.supervise.identities import APP_UID_BASE
from host.supervise.spawner import Spawner

IS_ROOT = os.geteuid() == 0
libc = ctypes.CDLL(None, use_errno=True)

SYS_KCMP = 312  # x86-64 (the filter kills every other architecture; so does this suite)
KCMP_FILE = 0  # kcmp: do (pid1, fd1) and (pid2, fd2) name the same open file description?
SYS_PIDFD_GETFD = 438  # x86-64: a duplicate of another process's descriptor (same description)
# Two apps of this test's own: numbers from the range the host gives installs (identities.py)
APP_UIDS = (APP_UID_BASE + 0xFF00, APP_UID_BASE + 0xFF01)
FLIPPED = os.O_APPEND | os.O_NONBLOCK

MODES = {"zygote": {"use_zygote": True},
         "prefork pool": {"use_zygote": True, "prefork": 2},
         "fresh interpreters": {"use_zygote": False}}


def _handshake(kid: Child, uid: int, ring: Keyring, clock: SystemClock) -> None:
    tok = tokens.issue(ring, clock, app_id=f"app-{uid}", install_id=f"i-{uid}",
                       session_id=kid.session_id, generation=1, epoch=1,
                       permissions=frozenset(), policy_hash="p")

    def verify(t: str) -> None:
        tokens.verify(t, ring, clock, session_id=kid.session_id)

    kid.handshake(tok, verify, degraded=False, uid=uid if IS_ROOT else None)


@pytest.fixture(params=sorted(MODES))
def two_apps(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """The app processes (host pids) of two live, handshaken children of two different apps."""
    spawner = Spawner(**MODES[request.param])  # type: ignore[arg-type]
    kids: list[Child] = []
    try:
        if spawner.pool is not None:
            assert spawner.pool.wait_ready(10.0)
        ring, clock = Keyring.ephemeral(), SystemClock()
        for uid in APP_UIDS:
            kid = spawner.start(ChildLimits())
            spawner.started()
            kids.append(kid)
            _handshake(kid, uid, ring, clock)
        yield kids[0].app_pid(), kids[1].app_pid()
    finally:
        for kid in kids:
            kid.shutdown(0.5)
        spawner.close()


def _fds(pid: int) -> list[int]:
    return sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))


def _kcmp_same(pid_a: int, fd_a: int, pid_b: int, fd_b: int) -> bool:
    rc = int(libc.syscall(SYS_KCMP, pid_a, pid_b, KCMP_FILE, fd_a, fd_b))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"kcmp({pid_a}:{fd_a}, {pid_b}:{fd_b}): {os.strerror(err)}")
    return rc == 0


@contextlib.contextmanager
def _description(pid: int, fd: int) -> Iterator[int]:
    """A descriptor in this process on the same open file description as `pid`'s `fd`."""
    pidfd = os.pidfd_open(pid)
    try:
        dup = int(libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0))
        if dup < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd({pid}, {fd}): {os.strerror(err)}")
    finally:
        os.close(pidfd)
    try:
        yield dup
    finally:
        os.close(dup)


def _flags(pid: int) -> dict[int, int]:
    out = {}
    for fd in _fds(pid):
        with _description(pid, fd) as dup:
            out[fd] = fcntl.fcntl(dup, fcntl.F_GETFL) & FLIPPED
    return out


@pytest.mark.skipif(not IS_ROOT, reason="kcmp and pidfd_getfd on another uid's child need root")
def test_no_descriptor_of_one_app_is_an_open_file_of_another(two_apps: tuple[int, int]) -> None:
    a, b = two_apps
    fds_a, fds_b = _fds(a), _fds(b)
    assert {0, 1, 2, 3, 4} <= set(fds_a) and {0, 1, 2, 3, 4} <= set(fds_b)
    shared = [(fa, fb) for fa in fds_a for fb in fds_b if _kcmp_same(a, fa, b, fb)]
    assert shared == [], f"(app A fd, app B fd) on one open file description: {shared}"


@pytest.mark.skipif(not IS_ROOT, reason="kcmp and pidfd_getfd on another uid's child need root")
def test_flags_one_app_sets_are_not_seen_by_another(two_apps: tuple[int, int]) -> None:
    a, b = two_apps
    before = _flags(b)
    for fd in (0, 1):  # the descriptors every child holds on a file that is not its channel
        with _description(a, fd) as dup:
            old = fcntl.fcntl(dup, fcntl.F_GETFL)
            fcntl.fcntl(dup, fcntl.F_SETFL, old ^ FLIPPED)
            try:
                assert fcntl.fcntl(dup, fcntl.F_GETFL) & FLIPPED == (old ^ FLIPPED) & FLIPPED
                seen = _flags(b)
            finally:
                fcntl.fcntl(dup, fcntl.F_SETFL, old)
        assert seen == before, f"app A's fd {fd} flags showed through app B's descriptors"


def test_no_writable_shared_mapping(two_apps: tuple[int, int]) -> None:
    """A read-only shared mapping of a root-owned file (the C library's gconv cache) cannot
    carry bits: mprotect cannot make it writable without a descriptor opened for writing."""
    for pid in two_apps:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            perms = line.split()[1]
            assert not (perms[1] == "w" and perms[3] == "s"), f"{pid}: {line}"
