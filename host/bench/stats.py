"""Percentiles over samples (nearest-rank on the sorted list: no interpolation surprises), and
the median of each figure over repeated runs."""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0 < p <= 100) by nearest rank. Raises on no samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def p50(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def p99(samples: Sequence[float]) -> float:
    return percentile(samples, 99)


def median_figures(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each figure's median over `runs` (the mean of the middle two for an even count): the
    issue's "three pairs, medians". Every run must hold the same figures."""
    if not runs:
        raise ValueError("no runs")
    keys = set(runs[0])
    for run in runs[1:]:
        if set(run) != keys:
            raise ValueError(f"runs hold different figures: {sorted(keys ^ set(run))}")
    return {k: float(statistics.median(run[k] for run in runs)) for k in sorted(keys)}
