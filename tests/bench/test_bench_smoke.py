"""Smoke test of `stockade bench --quick --json` with tiny iteration counts.

Checks the shape only (exactly the documented keys, every value a positive number, nothing but
the JSON object on stdout). No timing assertion: the suite must pass on a slow machine.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.bench import KEYS, TARGETS, BenchSizes, peer, targets_for
from host.bench import run as bench_run
from host.bench.peer import (
    ANCHOR_ENV,
    BUILD_PARTS,
    PEER_CALLS,
    PEER_KEYS,
    PeerError,
    find_anchor_run,
    measure_peer,
)
from host.bench.stats import median_figures, percentile
from host.cli.main import root

TINY = BenchSizes(
    floor=200, floor_warmup=20, reads=40, read_warmup=5, creates=20, create_warmup=2,
    throughput_calls=20, throughput_rounds=1, fanout_apps=50, fanout=3, fanout_warmup=1,
    cold=2, cold_warmup=1, spawn=1, spawn_warmup=0, rest=10, rest_warmup=2,
)

EXPECTED_KEYS = {
    "floor_rtt_us_p50", "floor_rtt_us_p99", "floor_one_core_us_p50", "floor_two_cores_us_p50",
    "read_us_p50", "read_us_p99", "create_us_p50",
    "create_us_p99", "rest_http_create_us_p50", "cold_start_ms_p50", "cold_start_idle_ms_p50",
    "spawn_start_ms_p50",
    "idle_app_private_mib", "fanout50_ms_p50", "fanout50_ms_p99", "fanout50_cpu_floor_ms",
    "calls_per_s_1app", "calls_per_s_4apps", "calls_per_s_4apps_2hosts",
}


def stand_in_build(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with every part of a peer build the checks look for (empty: the stand-in
    run.sh reads none of them, nor runs node)."""
    for part in BUILD_PARTS:
        path = folder / part
        if "." in path.name or path.name == "deno":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        else:
            path.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(peer, "TOOLS", ("bash",))
    return folder


def stand_in_runs(monkeypatch: pytest.MonkeyPatch, per_run: list[float]) -> None:
    """Stockade's own measurement replaced by figures that are `per_run[n]` for every key on
    the n-th run (what a run measures is the first test's; these are about how runs and the
    peer are put together, and three real runs cost the suite ~25 s)."""
    import host.bench

    calls = iter(per_run)

    def run_bench(sizes: BenchSizes, **_: object) -> dict[str, float]:
        assert sizes == TINY  # --quick's sizes reach the run
        value = next(calls)
        return {key: value for key in KEYS}

    monkeypatch.setattr(host.bench, "run_bench", run_bench)


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
        assert t.key in KEYS and (t.ref is None or t.ref in (*KEYS, *PEER_KEYS))


def test_peer_targets_are_judged_only_with_the_peer() -> None:
    figures = {k: 1.0 for k in KEYS}
    assert all(t.ref is None or t.ref in KEYS for t in targets_for("read_us_p50", figures))
    with_peer = targets_for("read_us_p50", {**figures, "peer_read_us_p50": 400.0})
    assert any(t.ref == "peer_read_us_p50" for t in with_peer)


def test_peer_figures_are_read_from_the_anchors_output(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """The anchor's run.sh output format (its README) parsed; a stand-in script prints it, since
    building the real engine takes the npm registry and a minute (`stockade bench --peer`)."""
    stand_in_build(tmp_path / "build", monkeypatch)
    script = tmp_path / "run.sh"
    script.write_text(
        "echo '{\"rtt\":{\"n\":3,\"p50_us\":329.1,\"p99_us\":900},\"event_rtt\":{},"
        "\"cold_ms\":{\"ready_p50\":166,\"first_answer_p50\":180.2,\"n\":3}}'\n"
        "echo '{\"node_deno_stdio_floor_p50_us\":48.5}'\n")
    got = measure_peer(tmp_path / "build", calls=10, cold=1, run_script=script)
    assert got == {"peer_read_us_p50": 329.1, "peer_cold_ms_p50": 180.2}
    with pytest.raises(PeerError, match="no Apps-Engine build"):
        measure_peer(tmp_path / "nothing", calls=10, cold=1, run_script=script)
    script.write_text("echo broken >&2; exit 1\n")
    with pytest.raises(PeerError, match="printed no figures"):
        measure_peer(tmp_path / "build", calls=10, cold=1, run_script=script)


def test_a_quick_run_warms_the_peer_as_a_full_one_does(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    # The stand-in anchor reports the call count it was given as its read p50.
    stand_in_build(tmp_path / "build", monkeypatch)
    script = tmp_path / "run.sh"
    script.write_text(r'echo "{\"rtt\":{\"p50_us\":$N},\"cold_ms\":{\"first_answer_p50\":$COLD}}"'
                      "\n")
    monkeypatch.setattr(bench_run, "QUICK", TINY)
    stand_in_runs(monkeypatch, [1.0])
    result = CliRunner().invoke(root, [
        "--home", str(tmp_path / "unused"), "bench", "--quick", "--json",
        "--peer", str(tmp_path / "build"), "--peer-anchor", str(tmp_path)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["peer_read_us_p50"] == PEER_CALLS  # not fewer calls than a full run
    assert figures["peer_cold_ms_p50"] == 3


def test_percentile_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 50) == 50.0
    assert percentile(xs, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_the_anchor_is_found_from_any_checkout_depth(tmp_path: Path) -> None:
    """The main checkout and a worktree (wt/NAME) sit at different depths below the shared
    folder: the run script is found by walking up, or named by the env var or the option."""
    anchor = tmp_path / "work" / "shared" / "anchors" / "apps-engine"
    anchor.mkdir(parents=True)
    (anchor / "run.sh").write_text("exit 0\n")
    for checkout in ("work/main", "work/wt/speed3"):
        module = tmp_path / checkout / "host" / "bench" / "peer.py"
        assert find_anchor_run(start=module, env={}) == anchor / "run.sh"
    elsewhere = tmp_path / "elsewhere" / "host" / "bench" / "peer.py"
    with pytest.raises(PeerError, match="--peer-anchor"):
        find_anchor_run(start=elsewhere, env={})
    assert find_anchor_run(start=elsewhere, env={ANCHOR_ENV: str(anchor)}) == anchor / "run.sh"
    assert find_anchor_run(anchor, start=elsewhere, env={}) == anchor / "run.sh"
    with pytest.raises(PeerError, match="no anchor run"):
        find_anchor_run(tmp_path, start=elsewhere, env={})


def test_this_checkout_finds_the_workplace_anchor_when_there_is_one() -> None:
    shared = [p / "shared" / "anchors" / "apps-engine" / "run.sh"
              for p in Path(__file__).resolve().parents]
    if not any(s.is_file() for s in shared):
        pytest.skip("no workplace anchor above this checkout (a clean clone)")
    assert find_anchor_run(env={}).is_file()


def test_pairs_report_each_figures_median_with_the_peer_after_each_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`--pairs 3 --peer`: Stockade then the peer, three times over; the table and the JSON give
    each figure's median (the issue's "three pairs, medians") and the JSON each run."""
    stand_in_build(tmp_path / "build", monkeypatch)
    # The stand-in anchor reads 300, 200, 100 µs on its first, second and third run: the
    # median is neither the first run nor the last.
    count = tmp_path / "count"
    script = tmp_path / "run.sh"
    script.write_text(
        f'n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}\n'
        'case $n in 1) r=300;; 2) r=200;; *) r=100;; esac\n'
        r'echo "{\"rtt\":{\"p50_us\":$r},\"cold_ms\":{\"first_answer_p50\":$n}}"' "\n")
    monkeypatch.setattr(bench_run, "QUICK", TINY)
    stand_in_runs(monkeypatch, [5.0, 9.0, 7.0])  # Stockade's median: its last run, 7
    result = CliRunner().invoke(root, [
        "--home", str(tmp_path / "unused"), "bench", "--quick", "--json", "--pairs", "3",
        "--peer", str(tmp_path / "build"), "--peer-anchor", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    runs = doc.pop("runs")
    assert [r["peer_read_us_p50"] for r in runs] == [300, 200, 100]
    assert doc["peer_read_us_p50"] == 200 and doc["peer_cold_ms_p50"] == 2
    assert [r["read_us_p50"] for r in runs] == [5.0, 9.0, 7.0]  # each run, in order
    for key in EXPECTED_KEYS:  # every figure the median of its three
        assert doc[key] == 7.0, key
    assert "medians of 3 pairs" in result.stderr


def test_pairs_are_refused_with_another_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["--home", str(tmp_path / "unused"), "bench",
                                       "--pairs", "2", "--scale"])
    assert result.exit_code != 0 and "--scale measures something else" in result.output
    result = CliRunner().invoke(root, ["--home", str(tmp_path / "unused"), "bench",
                                       "--pairs", "0"])
    assert result.exit_code != 0


def test_median_figures() -> None:
    assert median_figures([{"a": 3.0}, {"a": 1.0}, {"a": 2.0}]) == {"a": 2.0}
    assert median_figures([{"a": 1.0}, {"a": 4.0}]) == {"a": 2.5}
    with pytest.raises(ValueError, match="different figures"):
        median_figures([{"a": 1.0}, {"b": 1.0}])
    with pytest.raises(ValueError):
        median_figures([])
