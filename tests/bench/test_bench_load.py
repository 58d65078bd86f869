"""A tiny `stockade bench --load` smoke run: the example apps through the REST API at one low
rate for two seconds. Shape only (no timing assertion: the figures go in docs/BENCH.md from
full runs); it checks that conversations went through the REST API and their events were
measured, so the bench cannot silently measure nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_a_tiny_load_run_measures_events_from_rest_conversations(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()",
         "--home", str(tmp_path / "unused"), "bench", "--load", "--rates", "3",
         "--step-seconds", "2", "--json"],
        capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    [step] = out["steps"]
    assert step["conversations"] == 6 and step["failed_requests"] == 0
    # room started, message sent, closed and the apps' own follow-ups: several per conversation
    assert step["events"] >= 3 * step["conversations"]
    assert step["delay_ms_p99"] >= step["delay_ms_p50"] > 0
    assert step["host_cpu_ms_per_conversation"] > 0  # the host's own CPU, measured
    # the apps' children did work of their own (their handlers), counted apart from the host's
    assert step["apps_cpu_ms_per_conversation"] > 0
    # everything on the machine, the host included (tick accounting: not to the last tick)
    assert step["machine_cpu_ms_per_conversation"] >= 0.9 * step["host_cpu_ms_per_conversation"]
    assert step["cpu_bound_per_s"] > 0
    # one core's worth of the host's CPU, in conversations a second
    assert step["host_one_core_per_s"] == pytest.approx(
        1000 / step["host_cpu_ms_per_conversation"], rel=0.05)
    assert set(out) >= {"sustained_per_s", "target_per_s", "met"}
    # every app's queue was watched (six apps: the demo's four and the bench's two)
    peaks = step["queue_peaks"]
    assert len(peaks) == 6 and "crm-sync" in peaks
    assert all(isinstance(q, int) and q >= 0 for q in peaks.values())


class _Runner:
    def __init__(self, app_id: str, queued: list[int]) -> None:
        self.app_id, self._queued = app_id, queued

    def status(self) -> dict[str, int]:
        return {"queued": self._queued.pop(0) if len(self._queued) > 1 else self._queued[0]}


def test_the_queue_watch_keeps_each_apps_peak() -> None:
    from host.bench.load import QueueWatch, busiest

    runners = [_Runner("slow", [0, 3, 9, 4, 1]), _Runner("quick", [0, 1, 0]),
               _Runner("idle", [0])]
    watch = QueueWatch(lambda: runners, every_s=3600)  # sampled by hand below
    for _ in range(6):
        watch.sample()
    assert watch.peaks == {"slow": 9, "quick": 1, "idle": 0}
    assert busiest(watch.peaks) == "slow 9, quick 1"
    assert busiest({"idle": 0}) == ""
