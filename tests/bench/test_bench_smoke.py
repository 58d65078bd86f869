"""Smoke test of `stockade bench --quick --json` with tiny iteration counts.

Checks the shape only (exactly the documented keys, every value a positive number, nothing but
the JSON object on stdout). No timing assertion: the suite must pass on a slow machine.
"""
from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from host.bench import KEYS, TARGETS, BenchSizes
from host.bench import run as bench_run
from host.bench.stats import percentile
from host.cli.main import root

TINY = BenchSizes(
    floor=200, floor_warmup=20, reads=40, read_warmup=5, creates=20, create_warmup=2,
    throughput_calls=20, throughput_rounds=1, fanout_apps=50, fanout=3, fanout_warmup=1,
    cold=2, cold_warmup=1, spawn=1, spawn_warmup=0, rest=10, rest_warmup=2,
)

EXPECTED_KEYS = {
    "floor_rtt_us_p50", "floor_rtt_us_p99", "read_us_p50", "read_us_p99", "create_us_p50",
    "create_us_p99", "rest_http_create_us_p50", "cold_start_ms_p50", "spawn_start_ms_p50",
    "idle_app_private_mib", "fanout50_ms_p50", "fanout50_ms_p99", "calls_per_s_4apps",
}


def test_quick_json_has_exactly_the_keys_all_positive_numbers(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(bench_run, "QUICK", TINY)
    result = CliRunner().invoke(root, ["--home", str(tmp_path / "unused"), "bench", "--quick",
                                       "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    assert set(figures) == EXPECTED_KEYS == set(KEYS)
    for key, value in figures.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, (key, value)
    assert "read_us_p50" in result.stderr  # the table goes to stderr
    assert not (tmp_path / "unused").exists()  # the bench never touches the operator's home


def test_targets_name_real_keys() -> None:
    for t in TARGETS:
        assert t.key in KEYS and (t.ref is None or t.ref in KEYS)


def test_percentile_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 50) == 50.0
    assert percentile(xs, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
