"""The host process's garbage-collector tuning (measured in docs/BENCH.md, "Reading the
figures": ~10 µs off the median call; kept after issue 26's leak, which was not the tuning's)."""
from __future__ import annotations

import gc

# Young-generation allocations between two collections (CPython's default is 700). Every bridge
# call allocates a few hundred short-lived objects that die by reference counting; a collection
# every ~2 calls costs the call path ~10 us for nothing. Cycles are still collected, just in
# bigger, rarer batches.
GC_GEN0_THRESHOLD = 20_000
_gc_tuned = False


def tune_gc() -> None:
    """Freeze what start-up allocated (older generations stop rescanning it) and collect the
    young generation less often. Process-wide (the host is the process's main component), so
    only the first host started in a process does it. Garbage first: what is frozen is never
    collected, and cycles awaiting collection then (a stopped host's stores, with their open
    connections) would be kept for the process's life."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(GC_GEN0_THRESHOLD, gen0), gen1, gen2)
