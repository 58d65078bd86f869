"""A core claim held for a test that needs its host placed on a core of its own.

Every `Host` on a 2-core machine claims one core for its threads, machine-wide
(`host.supervise.coreclaim`). The suite runs on several workers, each starting hosts: a test
asserting its host *was* placed could find both cores claimed by other workers' hosts for a
moment, and its host then runs unplaced (as a real host does, and says so). Holding this
process's claim first, waited for, makes the test's host place itself on it (a claim is shared
within a process)."""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from host.supervise.coreclaim import claim_core

WAIT_S = 60.0  # other workers' hosts are short-lived: a core comes free well within this


@contextmanager
def core_claimed(cpus: Iterable[int]) -> Iterator[int]:
    """Hold a claim on one of `cpus` (waiting for one to come free); yields the core."""
    wanted = sorted(cpus)
    deadline = time.monotonic() + WAIT_S
    claim = claim_core(wanted)
    while claim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        claim = claim_core(wanted)
    assert claim is not None, f"no core of {wanted} came free in {WAIT_S:.0f} s"
    try:
        yield claim.cpu
    finally:
        claim.release()
