"""`stockade bench`: what a bridge call costs, beside the physical floor and the REST alternative.

`run_bench(QUICK | FULL)` returns one dict with `KEYS` (all numbers; `floor_two_cores_us_p50`
and `calls_per_s_4apps_2hosts` only where the process may use two CPUs); `TARGETS` are the
figures the design must reach on a 2-core Linux machine, reported as met / not met. See
docs/BENCH.md for what each figure measures.
"""
from __future__ import annotations

from host.bench.run import FULL, KEYS, QUICK, STEPS, BenchSizes, RunOptions, run_bench
from host.bench.targets import TARGETS, Target, target_for, targets_for

__all__ = ["FULL", "KEYS", "QUICK", "STEPS", "TARGETS", "BenchSizes", "RunOptions", "Target",
           "run_bench", "target_for", "targets_for"]
