"""The issue-7 targets for this hardware class. Reported as met / not met; never a failure."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    key: str
    text: str  # how the table states it
    op: str  # "<=" or ">="
    factor: float
    ref: str | None = None  # the key the bound is a multiple of; None: `factor` is absolute

    def bound(self, figures: Mapping[str, float]) -> float:
        return self.factor * (figures[self.ref] if self.ref else 1.0)

    def met(self, figures: Mapping[str, float]) -> bool:
        value, bound = figures[self.key], self.bound(figures)
        return value <= bound if self.op == "<=" else value >= bound


TARGETS: tuple[Target, ...] = (
    Target("read_us_p50", "≤ 1.5×floor", "<=", 1.5, "floor_rtt_us_p50"),
    Target("create_us_p50", "≤ 3×floor", "<=", 3.0, "floor_rtt_us_p50"),
    Target("rest_http_create_us_p50", "≥ 10×create", ">=", 10.0, "create_us_p50"),
    Target("cold_start_ms_p50", "≤ 5 ms", "<=", 5.0),
    Target("idle_app_private_mib", "≤ 3 MiB", "<=", 3.0),
    Target("fanout50_ms_p99", "≤ 2 ms", "<=", 2.0),
)


def target_for(key: str) -> Target | None:
    for t in TARGETS:
        if t.key == key:
            return t
    return None
