"""Under memory pressure the kernel kills an app's child before the host (DESIGN rule 5).

The finding: every app child ran with the kernel's default OOM adjustment (0), like the host,
so the OOM killer chose by size alone. An app filling the memory it is allowed on a machine
without headroom (or several apps together) pushed the machine out of memory, and the process
the kernel then killed was the biggest one: the host, which is bigger than a child that holds
less than the host does. One app's allocation within its own limits stopped every app and the
gate. Now each child raises its own `oom_score_adj` to the most (`confine.OOM_SCORE_ADJ`)
before its identity drop and Landlock, so the kernel takes an app before the host or the
zygote, and among apps the one holding the most.

Shown with the kernel's own ranking (`/proc/<pid>/oom_score`, what the OOM killer compares):
the test process stands for the host and holds more than the escaped app child, which
allocates and touches memory of its own; the child must rank above it. Before the fix it ranked
below. Each way a child is started (zygote, prefork pool, fresh interpreter) is checked for the
adjustment itself.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from escapezygote import escaped_spawner, run_escaped, start_app

from host.supervise.child import Child
from host.supervise.identities import APP_UID_BASE
from host.supervise.spawner import Spawner
from sandbox import confine

APP_UID = APP_UID_BASE + 0xFE40
HOST_BALLAST_MIB = 256  # what the stand-in host holds beyond its own modules
APP_ALLOC_MIB = 48  # what the escaped app allocates and touches (well inside its 256 MiB)

GROW = '''
held = bytearray(%d << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
sys.modules["builtins"].held = held  # kept after the snippet ends
raise Exception("REPORT " + repr(len(held)))
'''


def _oom_score(pid: int) -> int:
    with open(f"/proc/{pid}/oom_score") as f:
        return int(f.read())


def _oom_adj(pid: int) -> int:
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def test_an_app_filling_its_memory_ranks_above_a_bigger_host(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spawner = escaped_spawner(monkeypatch, tmp_path)
    kid: Child | None = None
    ballast = bytearray(HOST_BALLAST_MIB << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    try:
        kid = start_app(spawner, APP_UID)
        assert run_escaped(kid, GROW % APP_ALLOC_MIB) == APP_ALLOC_MIB << 20
        host, app = _oom_score(os.getpid()), _oom_score(kid.app_pid())
        assert app > host, (
            f"the OOM killer ranks the host ({host}) above the app that filled memory ({app}): "
            "the host would be killed first")
    finally:
        del ballast
        if kid is not None:
            kid.shutdown(0.5)
        spawner.close()


@pytest.fixture(params=["zygote", "prefork pool", "fresh interpreters"])
def child(request: pytest.FixtureRequest) -> Iterator[Child]:
    spawner = Spawner(use_zygote=request.param != "fresh interpreters",
                      prefork=2 if request.param == "prefork pool" else 0)
    try:
        if spawner.pool is not None:
            assert spawner.pool.wait_ready(10.0)
        kid = start_app(spawner, APP_UID)
        try:
            yield kid
        finally:
            kid.shutdown(0.5)
    finally:
        spawner.close()


def test_every_app_child_is_the_oom_killers_first_pick(child: Child) -> None:
    assert _oom_adj(child.app_pid()) == confine.OOM_SCORE_ADJ == 1000
    assert _oom_adj(os.getpid()) < confine.OOM_SCORE_ADJ  # the host keeps its own
