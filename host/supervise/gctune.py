"""The host process's garbage-collector tuning (measured in docs/BENCH.md, "Reading the
figures": ~10 µs off the median call; kept after issue 26's leak, which was not the tuning's)."""
from __future__ import annotations

import gc
import threading

# Young-generation allocations between two collections (CPython's default is 700). Every bridge
# call allocates a few hundred short-lived objects that die by reference counting; a collection
# every ~2 calls costs the call path ~10 us for nothing. Cycles are still collected, just in
# bigger, rarer batches.
GC_GEN0_THRESHOLD = 20_000
_tuned_by: set[int] = set()  # id() of each running host that asked for the tuning
_saved_threshold: tuple[int, int, int] | None = None  # the process's own, put back at the end
_lock = threading.Lock()


def tune_gc(host: object) -> None:
    """Freeze what start-up allocated (older generations stop rescanning it) and collect the
    young generation less often. Process-wide (the host is the process's main component), so
    only the first of the hosts running in a process does it. Garbage first: what is frozen is
    never collected, and cycles awaiting collection then would be kept while it is frozen."""
    global _saved_threshold
    with _lock:
        first = not _tuned_by
        _tuned_by.add(id(host))
        if not first:
            return
        gc.collect()
        gc.freeze()
        _saved_threshold = gc.get_threshold()
        gen0, gen1, gen2 = _saved_threshold
        gc.set_threshold(max(GC_GEN0_THRESHOLD, gen0), gen1, gen2)


def untune_gc(host: object) -> None:
    """`host` stopped: when it was the last tuned one running, unfreeze (the frozen objects,
    the first host's whole graph among them, could otherwise never be collected: a long-lived
    process that starts and stops hosts, a test worker, kept every first host's memory) and put
    the threshold back. Idempotent; a no-op for a host that never tuned."""
    global _saved_threshold
    with _lock:
        if id(host) not in _tuned_by:
            return
        _tuned_by.discard(id(host))
        if _tuned_by:
            return
        gc.unfreeze()
        if _saved_threshold is not None:
            gc.set_threshold(*_saved_threshold)
            _saved_threshold = None
