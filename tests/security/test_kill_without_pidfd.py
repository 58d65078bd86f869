"""Killing a zygote's child where the kernel gives no pidfd.

`Child.kill` signals through a pidfd; a zygote's child has no `Popen` either, so on a kernel
without `pidfd_open` (before Linux 5.3, or a seccomp profile that refuses it) a kill did nothing:
a hung or flooding app kept running while the host called it dead. The host may not signal the
number itself (the zygote reaps its children, and a reaped number can be reused by another
app's child), so the zygote, its parent, does it while the child is still unreaped.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from host.supervise.child import ChildLimits
from host.supervise.spawner import Spawner


def _no_pidfd(_pid: int, _flags: int = 0) -> int:
    raise OSError(38, "Function not implemented")  # ENOSYS, as an old kernel answers


@pytest.fixture
def spawner(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spawner]:
    monkeypatch.setattr(os, "pidfd_open", _no_pidfd)
    sp = Spawner(use_zygote=True)
    try:
        yield sp
    finally:
        sp.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_kill_stops_a_zygote_child_when_the_kernel_has_no_pidfd(spawner: Spawner) -> None:
    child = spawner.start(ChildLimits())
    try:
        assert _alive(child.pid)
        child.kill("hung", code="timeout")
        assert child._exited.wait(10), "the child is still running after kill"
        assert child.exit_status is not None and os.WIFSIGNALED(child.exit_status)
        assert os.WTERMSIG(child.exit_status) == signal.SIGKILL
    finally:
        child.close()


def test_the_zygote_signals_only_its_own_unreaped_children(spawner: Spawner) -> None:
    """A number the zygote did not fork (here an unrelated process) is never signalled."""
    zygote = spawner.zygote
    assert zygote is not None
    other = subprocess.Popen(["sleep", "30"])
    try:
        zygote.kill(other.pid)
        sync = spawner.start(ChildLimits())  # the zygote answers in order: the kill was read
        try:
            time.sleep(0.1)
            assert other.poll() is None, "the zygote killed a process it does not own"
        finally:
            sync.kill("done")
            sync.close()
    finally:
        other.kill()
        other.wait()
