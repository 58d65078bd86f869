"""Smoke test of `stockade bench --scale` with tiny sizes: the shape of its figures, and that the
grown audit log is a real chain (it must verify, or the verify figure would time nothing)."""
from __future__ import annotations

import json
import logging
import math
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.bench import scale
from host.bench.apps import install_bench_apps
from host.cli.main import root
from host.clock import SystemClock
from host.home import Home
from host.ledger.audit import AuditLog

TINY = scale.ScaleSizes(audit_small=300, audit_big=1_200, window_small=3, window_big=30,
                        apps_big=3, reads=20, creates=5, fanout=3, fanout_warmup=1,
                        ledger_samples=20)


def test_scale_json_has_every_target_figure(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(scale, "QUICK", TINY)
    result = CliRunner().invoke(root, ["--home", str(tmp_path / "unused"), "bench", "--scale",
                                       "--quick", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key, *_ in scale.TARGETS:
        assert math.isfinite(figures[key]) and figures[key] >= 0, key
        assert key in result.stderr
    assert figures["window_units_big"] == TINY.window_big
    # The fan-out's CPU, read from the kernel: every app ran its handler, the host its pump.
    assert figures["fanout_big_apps_cpu_us"] > 0 and figures["fanout_big_host_cpu_ms"] > 0
    assert figures["fanout_big_cpu_floor_ms"] > 0
    assert "met" in result.stderr
    assert not (tmp_path / "unused").exists()


def test_grown_audit_log_is_one_verified_chain(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    install_bench_apps(home, tmp_path / "apps", 1)
    assert scale.pad_audit(home, 2_500, batch=700) == 2_500
    assert scale.time_verify(home) >= 0  # raises if the chain or the anchor does not verify
    conn = sqlite3.connect(home.host_db)
    assert conn.execute("SELECT COUNT(*), MAX(seq) FROM audit").fetchone() == (2_500, 2_500)
    conn.close()
    log = AuditLog(home.host_db, SystemClock(), readonly=True)
    anchor = log.read_anchor()
    log.close()
    assert anchor is not None and anchor.seq == 2_500


def test_the_interleaved_ledgers_each_keep_their_own_anchor(
        caplog: pytest.LogCaptureFixture) -> None:
    # Four ledgers side by side: in one folder they shared `audit.anchor`, each found another's
    # head there, and every anchoring after the first was refused as a rewritten chain (so the
    # figure measured ledgers whose anchoring failed, and the run logged chain errors).
    from host.bench.growth import measure_growth

    with caplog.at_level(logging.WARNING, logger="stockade.audit"):
        figures = measure_growth(600, 2_600, 3, 30, samples=40, pairs=2)
    assert figures["ledger_audit_ratio"] > 0 and figures["ledger_window_ratio"] > 0
    assert not [r for r in caplog.records if "anchor" in r.getMessage()]
