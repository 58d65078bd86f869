"""`stockade bench --ledger-split`: a rated read's admission in process and in a writer process.

The comparison is an argument for a redesign, so both sides must do the same durable work: each
test counts what a run left in the store (every call's decision and its outcome, chained) and
checks that the split run's admissions were written by another process. No timing assertion.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from benchcli import quick_json

from host.bench import ledgersplit
from host.clock import SystemClock
from host.ledger.ledger import Ledger


def _rows(db: Path) -> tuple[int, int, set[str]]:
    """(decision records, outcome records, op ids of the decisions) for the probe's app."""
    conn = sqlite3.connect(db)
    try:
        bodies = [json.loads(r[0]) for r in conn.execute("SELECT body FROM audit")]
    finally:
        conn.close()
    probe = [b for b in bodies if b.get("app_id") == "probe"]
    decisions = [b for b in probe if b["kind"] == "decision"]
    outcomes = [b for b in probe if b["kind"] == "outcome"]
    return len(decisions), len(outcomes), {str(b["op_id"]) for b in decisions}


@pytest.mark.parametrize("mode", ["inproc", "split"])
def test_each_mode_records_every_call_it_times(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    Ledger(db, SystemClock()).close()
    run = ledgersplit.run_mode(mode, db, 0.4, callers=2, load=ledgersplit.Load(threads=1))
    assert run.latencies and all(x > 0 for x in run.latencies)
    assert run.cpu_s > 0
    if mode == "split":
        assert run.writer_pid is not None and run.writer_pid != os.getpid()
    else:
        assert run.writer_pid is None
    decisions, outcomes, ops = _rows(db)
    # Every timed call plus one untimed warm-up a caller: a decision with its quota unit, and
    # the outcome the group commit wrote for it, each op once.
    assert decisions == outcomes == len(run.latencies) + 2 == len(ops)
    ledger = Ledger(db, SystemClock())
    try:
        assert ledger.audit.verify().ok
        assert ledger.quota_state("install:probe:*", 100_000, 600.0).used == decisions
    finally:
        ledger.close()


def test_a_writer_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    db = tmp_path / "host.db"
    db.write_text("not a database")
    with pytest.raises(RuntimeError, match="writer process stopped"):
        ledgersplit.run_mode("split", db, 0.2, callers=1, load=ledgersplit.Load(threads=0))


def test_ledger_split_json_has_its_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ledgersplit, "QUICK", (1, 0.3))
    figures, table = quick_json(tmp_path, "--ledger-split", ledgersplit.KEYS)
    for mode in ("inproc", "split"):
        assert figures[f"{mode}_us_p99"] >= figures[f"{mode}_us_p50"]
    assert "split_us_p50" in table
