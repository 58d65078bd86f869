"""The pre-fork pool: confined children forked ahead of need, handed out by `Spawner.start`.

A pooled child must be as confined as any other (the handshake still checks its layers), must
never be handed out once it has died, must not serve a start that asks for other limits, and
must not outlive the spawner.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.clock import SystemClock
from host.keys.keyring import Keyring
from host.keys.tokens import issue, verify
from host.supervise import prefork
from host.supervise.child import ChildLimits
from host.supervise.prefork import REFILL_DEFER_MAX_S, Prefork
from host.supervise.spawner import Spawner

POOL_WAIT_S = 10.0


@pytest.fixture()
def pooled() -> Iterator[Spawner]:
    sp = Spawner(use_zygote=True, prefork=1, prefork_limits=ChildLimits())
    try:
        assert sp.pool is not None
        assert sp.pool.wait_ready(POOL_WAIT_S)
        yield sp
    finally:
        sp.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # zygote children are reaped by the zygote; a zombie still answers kill(0), so read
        # the state too
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return not _alive(pid)


def _pool_pids(sp: Spawner) -> list[int]:
    assert sp.pool is not None
    return [c.pid for c in sp.pool._ready]


def test_start_hands_out_the_pooled_child_and_the_pool_refills(pooled: Spawner) -> None:
    assert pooled.pool is not None
    [ready_pid] = _pool_pids(pooled)
    made = pooled.pool.made
    child = pooled.start(ChildLimits())
    try:
        assert child.pid == ready_pid
        assert pooled.pool.wait_ready(POOL_WAIT_S)
        assert pooled.pool.made == made + 1
        assert _pool_pids(pooled) != [ready_pid]
    finally:
        child.kill("test over")
        child.close()


def test_a_pooled_child_is_confined_and_takes_a_token(pooled: Spawner, tmp_path: Path) -> None:
    keyring = Keyring.open(tmp_path / "keys")
    clock = SystemClock()
    child = pooled.start(ChildLimits())
    try:
        token = issue(keyring, clock, app_id="a", install_id="i", session_id=child.session_id,
                      generation=1, epoch=1, permissions=frozenset(), policy_hash="p")
        layers = child.handshake(
            token, lambda t: _discard(verify(t, keyring, clock, session_id=child.session_id)),
            degraded=False)
        assert layers.seccomp and layers.landlock and layers.netns and layers.uid_dropped
    finally:
        child.kill("test over")
        child.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="/proc/<pid>/root of another uid's child")
def test_a_pooled_child_waits_for_its_app_in_an_empty_root(pooled: Spawner) -> None:
    """The empty root depends on no app: a pooled child enters it before it waits (and the
    start that takes it no longer waits for it). Before, it kept the real "/" until its hello."""
    [pid] = _pool_pids(pooled)
    deadline = time.monotonic() + POOL_WAIT_S  # it confines itself after the fork returned
    root = os.readlink(f"/proc/{pid}/root")
    while root == "/" and time.monotonic() < deadline:
        time.sleep(0.02)
        root = os.readlink(f"/proc/{pid}/root")
    assert root.endswith(" (deleted)") and "/stockade-root-" in root, root


def test_a_pooled_child_that_died_is_never_handed_out(pooled: Spawner) -> None:
    [dead_pid] = _pool_pids(pooled)
    os.kill(dead_pid, signal.SIGKILL)
    assert _wait_gone(dead_pid)
    deadline = time.monotonic() + 5
    assert pooled.pool is not None
    while not pooled.pool._ready[0].has_exited() and time.monotonic() < deadline:
        time.sleep(0.01)  # the zygote reports the exit asynchronously
    child = pooled.start(ChildLimits())
    try:
        assert child.pid != dead_pid
        assert not child.dead
    finally:
        child.kill("test over")
        child.close()


def test_other_limits_bypass_the_pool(pooled: Spawner) -> None:
    [ready_pid] = _pool_pids(pooled)
    child = pooled.start(ChildLimits(memory_mib=128))
    try:
        assert child.pid != ready_pid
        assert _pool_pids(pooled) == [ready_pid]
    finally:
        child.kill("test over")
        child.close()


def test_closing_the_pool_kills_its_children() -> None:
    sp = Spawner(use_zygote=True, prefork=2, prefork_limits=ChildLimits())
    try:
        assert sp.pool is not None and sp.pool.wait_ready(POOL_WAIT_S)
        pids = _pool_pids(sp)
        assert len(pids) == 2
        sp.pool.close()  # the zygote stays up: its death would take the children with it
        assert all(_wait_gone(pid) for pid in pids)
        assert sp.pool.take() is None
    finally:
        sp.close()


def test_no_pool_without_a_zygote() -> None:
    sp = Spawner(use_zygote=False, prefork=2)
    try:
        assert sp.pool is None
    finally:
        sp.close()


def _discard(_value: object) -> None:
    return None


class _Fake:
    dead = False

    def has_exited(self) -> bool:
        return False

    def kill(self, reason: str, *, code: str = "") -> None:
        self.dead = True

    def close(self) -> None:
        pass


def _counted_pool() -> tuple[Prefork[_Fake], list[_Fake]]:
    """A pool of one fake child, and every child it has made so far."""
    made: list[_Fake] = []

    def make() -> _Fake:
        made.append(_Fake())
        return made[-1]

    return Prefork(make, 1), made


def test_the_replacement_waits_for_the_start_that_took_a_child() -> None:
    """Forking the replacement during a start competes with it for the cores: it waits for
    `started` (or the cap, for a start that never reports back)."""
    pool, made = _counted_pool()
    try:
        assert pool.wait_ready(POOL_WAIT_S)
        assert pool.take() is made[0]
        time.sleep(REFILL_DEFER_MAX_S / 2)
        assert len(made) == 1  # the start is still running: no fork yet
        pool.started()
        assert pool.wait_ready(POOL_WAIT_S) and len(made) == 2
        assert pool.take() is made[1]  # never reported back: refilled after the cap
        assert pool.wait_ready(POOL_WAIT_S) and len(made) == 3
    finally:
        pool.close()


def test_the_replacement_waits_a_moment_more_after_the_start_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The start's answer is still on its way when it reports: the fork waits REFILL_SETTLE_S
    more (widened here so the wait can be seen on a loaded machine)."""
    monkeypatch.setattr(prefork, "REFILL_SETTLE_S", 1.0)
    pool, made = _counted_pool()
    try:
        assert pool.wait_ready(POOL_WAIT_S)
        assert pool.take() is made[0]
        pool.started()
        time.sleep(0.3)
        assert len(made) == 1  # reported, but the settle has not passed
        assert pool.wait_ready(POOL_WAIT_S) and len(made) == 2
    finally:
        pool.close()
