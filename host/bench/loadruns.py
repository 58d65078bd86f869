"""`stockade bench --load --pairs N`: the same rates run N times, and what held in most of them.

On this shared 2-core machine one `--load` run decides a rate by its neighbours as much as by the
code: the same checkout held 50 conversations/s in seven runs of ten in one hour (docs/BENCH.md,
"Where 50/s stands"). A capacity worth quoting, or a change worth comparing, is what most runs
hold. So a rate counts as sustained here only when it, and every lower rate, held in more than
half of the runs; a run that stopped before a rate (`run_load` stops far past capacity) did not
hold it.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from host.bench.load import (
    MAX_DELAY_P99_MS,
    TARGET_PER_S,
    LoadResult,
    LoadStep,
    sustained_rate,
)


@dataclass
class RateSummary:
    """One rate across the runs: how many held it, and the medians of the runs that reached it."""

    rate: float
    held: int
    runs: int
    delay_ms_p99_median: float
    host_cpu_ms_per_conversation_median: float

    @property
    def mostly_held(self) -> bool:
        return self.held * 2 > self.runs


@dataclass
class LoadRuns:
    runs: list[LoadResult]
    target_per_s: float = TARGET_PER_S
    max_delay_p99_ms: float = MAX_DELAY_P99_MS

    def rates(self) -> list[RateSummary]:
        """Each rate any run reached, lowest first."""
        seen = sorted({s.rate for r in self.runs for s in r.steps})
        out = []
        for rate in seen:
            steps: list[LoadStep] = [s for r in self.runs for s in r.steps if s.rate == rate]
            out.append(RateSummary(
                rate=rate, held=sum(s.sustained for s in steps), runs=len(self.runs),
                delay_ms_p99_median=round(statistics.median(s.delay_ms_p99 for s in steps), 1),
                host_cpu_ms_per_conversation_median=round(statistics.median(
                    s.host_cpu_ms_per_conversation for s in steps), 2)))
        return out

    @property
    def sustained_per_s(self) -> float:
        """The highest rate that, with every rate below it, held in more than half the runs
        (the rule a single run's steps are judged by, on what most runs held)."""
        return sustained_rate((s.rate, s.mostly_held) for s in self.rates())

    @property
    def met(self) -> bool:
        return self.sustained_per_s >= self.target_per_s

    def to_json(self) -> dict[str, Any]:
        return {
            "rest": self.runs[0].rest if self.runs else "host",
            "server_data": self.runs[0].server_data if self.runs else "host.db",
            "sustained_per_s": self.sustained_per_s, "target_per_s": self.target_per_s,
            "max_delay_p99_ms": self.max_delay_p99_ms, "met": self.met,
            "rates": [{**vars(s), "mostly_held": s.mostly_held} for s in self.rates()],
            "runs": [r.to_json() for r in self.runs],
        }
