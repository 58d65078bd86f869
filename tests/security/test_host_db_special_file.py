"""A FIFO (or a device) where `HOME/host.db` belongs is refused in one line, never waited on.

SQLite opens the database file and reads its header: a FIFO put at `host.db` by someone who
can write the home blocked that read until a writer came, so `audit verify`, `audit tail` (and
`serve`, which checks the store before it starts) hung for ever.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The fixed code answers in about a second; the old one never did.
TIMEOUT_S = 30


@pytest.mark.parametrize("args", [("audit", "verify"), ("audit", "verify", "--json"),
                                  ("audit", "tail"), ("audit", "show", "1")])
def test_a_fifo_for_host_db_is_refused_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    os.mkfifo(tmp_path / "host.db", 0o600)
    r = subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home",
         str(tmp_path), *args], capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
    assert r.returncode in (1, 2) and r.stdout == "", r
    assert "not a regular file" in r.stderr and "unexpected" not in r.stderr, r.stderr
