"""`stockade audit` refuses input it cannot use as a usage error (exit 2, a clear line), never
an unexpected error: a record number past SQLite's 64-bit integers made `audit show` fail
with "unexpected OverflowError ... please report it" (exit 1)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import AuditLog, AuditRecord

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args", [("show", str(2**63)), ("show", "9" * 40),
                                  ("show", str(2**63), "--json"), ("show", "0"),
                                  ("tail", "-n", str(2**63))])
def test_an_out_of_range_number_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(1_700_000_000.0))
    log.append(AuditRecord(kind="supervisor", event="test", detail="r"))
    log.close()
    r = subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
         str(tmp_path), "audit", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == "", r
    assert "unexpected" not in r.stderr and "Invalid value" in r.stderr, r.stderr
