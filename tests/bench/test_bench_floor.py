"""The pipe floor is measured in both placements, pinned, and the targets use the lower one.

Left to the scheduler, the floor's two processes landed on one core in some runs and on two in
others, and on a VM the two cost 4 and 64 µs: a target that is a multiple of the floor was met
or missed by where the scheduler put two processes (docs/BENCH.md, "The floor, placed").
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from host.bench import run as bench_run
from host.bench.floor import measure_floor, measure_floor_placed, placements
from host.cli.main import root
from tests.bench.test_bench_smoke import TINY

TWO_CPUS = len(os.sched_getaffinity(0)) >= 2
needs_two = pytest.mark.skipif(not TWO_CPUS, reason="this process may use one CPU only")


@needs_two
def test_each_placement_is_measured_and_the_floor_is_the_lower() -> None:
    figures = bench_run._floor(TINY)
    assert set(figures) == {"floor_rtt_us_p50", "floor_rtt_us_p99", "floor_one_core_us_p50",
                            "floor_two_cores_us_p50"}
    assert figures["floor_rtt_us_p50"] == min(figures["floor_one_core_us_p50"],
                                              figures["floor_two_cores_us_p50"])
    assert figures["floor_rtt_us_p99"] >= figures["floor_rtt_us_p50"] > 0


def test_the_callers_cpus_are_restored() -> None:
    before = os.sched_getaffinity(0)
    measure_floor_placed(50, 5)
    assert os.sched_getaffinity(0) == before


@needs_two
def test_both_ends_run_on_the_cpus_asked() -> None:
    """The placements name this process's first two CPUs; the measuring end stays on its CPU
    and the echo child it forks runs on the other one asked."""
    first, second = sorted(os.sched_getaffinity(0))[:2]
    assert placements() == {"one_core": (first, first), "two_cores": (first, second)}
    seen: list[set[int]] = []

    def record() -> None:
        measure_floor(20_000, 0, (second, first))
        seen.append(os.sched_getaffinity(0))

    t = threading.Thread(target=record)
    t.start()
    echo: set[int] | None = None
    while t.is_alive() and echo != {first}:  # the echo child lives as long as the round trips
        with contextlib.suppress(OSError):  # it ended meanwhile
            # the thread's own children: the measuring thread forks the echo child
            with open(f"/proc/{os.getpid()}/task/{t.native_id}/children", "rb") as f:
                for pid in f.read().split():
                    echo = os.sched_getaffinity(int(pid))
    t.join()
    assert echo == {first}  # the echo child on the CPU asked for it
    assert seen == [{second}]  # the measuring thread stays where it was put


def test_one_usable_cpu_gives_one_placement() -> None:
    got: list[dict[str, float]] = []

    def on_one() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        got.append(bench_run._floor(TINY))

    t = threading.Thread(target=on_one)
    t.start()
    t.join()
    assert set(got[0]) == {"floor_rtt_us_p50", "floor_rtt_us_p99", "floor_one_core_us_p50"}
    assert got[0]["floor_rtt_us_p50"] == got[0]["floor_one_core_us_p50"]


def test_the_bench_prints_its_table_on_one_cpu(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """Under `taskset -c 0` there is no two-core figure: the table and JSON go without it
    (the table once looked up every key and failed)."""
    monkeypatch.setattr(bench_run, "QUICK", TINY)
    results: list[Any] = []

    def on_one() -> None:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        results.append(CliRunner().invoke(root, ["--home", str(tmp_path / "unused"), "bench",
                                                 "--quick", "--json"]))

    t = threading.Thread(target=on_one)
    t.start()
    t.join()
    result = results[0]
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert "floor_two_cores_us_p50" not in figures
    assert figures["floor_rtt_us_p50"] == figures["floor_one_core_us_p50"]
    assert "floor_one_core_us_p50" in result.stderr and "read_us_p50" in result.stderr
