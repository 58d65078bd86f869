"""What `audit verify` says about a forged row is the host's words: the row's own text in it is
escaped and cut, so it can neither print a line of its own (a fake "audit log intact"), move
the cursor or retitle the terminal, nor flood the screen.

A body with an unknown field was named by its field names, verbatim and whole: a row appended
with a key of `"\\x1b[2J...\\nFORGED LINE: audit log intact"` cleared the operator's screen and
printed a line of its choosing under the verdict (the same text reaches a refused `serve`'s
message and an operator command's refusal).
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import GENESIS_HASH, AuditLog, AuditRecord, chain_hash

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
EVIL_KEY = "\x1b[2J\x1b]0;pwned\x07\nFORGED LINE: audit log intact\u202e" + "k" * 100_000
BODIES = {
    "unknown-field": json.dumps({"kind": "x", EVIL_KEY: 1}),
    "segment-head": json.dumps({"kind": "segment", "ref_seq": 1, "head_seq": 3,
                                "head_hash": "\x1b[2J\nFORGED LINE" + "0" * 60}),
}


def _home(tmp_path: Path, body: str, *, segment: bool) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0))
    for i in range(3):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    seq, h = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = GENESIS_HASH if segment else h
    c.execute("INSERT INTO audit VALUES(?, ?, ?, ?, ?)",
              (seq + 1, T0, body, prev, chain_hash(prev, seq + 1, T0, body)))
    c.close()


@pytest.mark.parametrize("name", sorted(BODIES))
def test_verify_never_prints_a_forged_rows_text_raw(tmp_path: Path, name: str) -> None:
    _home(tmp_path, BODIES[name], segment=name.startswith("segment"))
    r = subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
         str(tmp_path), "audit", "verify"], capture_output=True, text=True, timeout=60,
        cwd=ROOT, env={**os.environ, "COLUMNS": "100000"})
    assert r.returncode == 1, r.stderr
    assert not any(ln.startswith("FORGED") for ln in r.stderr.splitlines()), r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\u202e" not in r.stderr
    assert len(r.stderr) < 5_000, len(r.stderr)
    res = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True).verify()
    assert "\x1b" not in (res.problem or "") and len(res.problem or "") < 2_000, res.problem
