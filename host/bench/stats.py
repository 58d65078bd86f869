"""Percentiles over samples (nearest-rank on the sorted list: no interpolation surprises)."""
from __future__ import annotations

import math
from collections.abc import Sequence


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
