"""The bench targets (issue 27). Reported as met / not met; never a failure."""
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


# Issue 27's targets: ratios to figures of the same run (the pipe floor, the bridge create,
# the Apps-Engine peer when `--peer` measured it), so a noisy shared machine moves both sides.
TARGETS: tuple[Target, ...] = (
    Target("read_us_p50", "≤ 8×floor", "<=", 8.0, "floor_rtt_us_p50"),
    Target("read_us_p50", "≤ 0.5×Apps-Engine", "<=", 0.5, "peer_read_us_p50"),
    Target("create_us_p50", "≤ 20×floor", "<=", 20.0, "floor_rtt_us_p50"),
    Target("rest_http_create_us_p50", "≥ 5×create", ">=", 5.0, "create_us_p50"),
    Target("cold_start_ms_p50", "≤ 5 ms", "<=", 5.0),
    Target("cold_start_ms_p50", "≤ 0.05×Apps-Engine", "<=", 0.05, "peer_cold_ms_p50"),
    Target("idle_app_private_mib", "≤ 3 MiB", "<=", 3.0),
    Target("fanout50_ms_p99", "≤ 2 ms", "<=", 2.0),
    # "The gate's throughput grows with a second core": by at least half a core's worth.
    Target("calls_per_s_4apps_2hosts", "≥ 1.5×4apps", ">=", 1.5, "calls_per_s_4apps"),
)


def targets_for(key: str, figures: Mapping[str, float]) -> list[Target]:
    """The targets on `key` that this run can judge (a peer target needs the peer's figure)."""
    return [t for t in TARGETS if t.key == key and (t.ref is None or t.ref in figures)]


def target_for(key: str) -> Target | None:
    for t in TARGETS:
        if t.key == key:
            return t
    return None
