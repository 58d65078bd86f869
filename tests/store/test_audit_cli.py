"""`stockade audit verify|tail|show`: exit codes, --json on stdout only, escaped human output."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from host.clock import ManualClock
from host.ledger.audit import AuditRecord
from host.ledger.ledger import Ledger
from host.ledger.quota import Charge

# A forged line, a screen clear, and blank-looking characters (they pad a line to the screen's
# width so a row of the author's choosing starts the next one).
EVIL = ('hi\n     99  2026-01-01T00:00:00Z  decision  allow  admin  roles.assign\x1b[2J'
        '\u2800\u3164\u00a0')


def _cli(home: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from host.cli.main import main; main()", "--home", str(home),
         "audit", *args],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "COLUMNS": str(columns)},
    )


def _home(tmp_path: Path) -> Path:
    led = Ledger(tmp_path / "host.db", ManualClock(1_700_000_000.0))
    a = led.admit(AuditRecord(kind="decision", app_id="agent-sync", install_id="i1",
                              action="users.create", op_id="op1", write=True, message=EVIL),
                  [Charge("app:agent-sync:users.create", 5, 60.0)], None)
    led.outcome(a.seq, "op1", True, None, False)
    led.close()
    return tmp_path


def test_verify_ok_then_tampered(tmp_path: Path) -> None:
    home = _home(tmp_path)
    r = _cli(home, "verify", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout is exactly one JSON document
    assert doc["ok"] is True and doc["records"] == 2
    assert "intact" in r.stderr and "intact" not in r.stdout

    c = sqlite3.connect(home / "host.db", isolation_level=None)
    c.execute("DROP TRIGGER audit_no_update")
    c.execute("UPDATE audit SET body=replace(body, 'users.create', 'users.delete') WHERE seq=1")
    c.close()
    r = _cli(home, "verify")
    assert r.returncode == 1 and "record 1" in r.stderr and r.stdout == ""
    r = _cli(home, "verify", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["first_bad_seq"] == 1


def test_tail_and_show_escape_app_strings(tmp_path: Path) -> None:
    home = _home(tmp_path)
    r = _cli(home, "tail", "-n", "5", columns=400)
    assert r.returncode == 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 2  # the forged line inside the message stays inside record 1
    assert "\x1b" not in r.stderr and "hi\\n     99" in lines[0]
    assert not {"\u2800", "\u3164", "\u00a0"} & set(r.stderr)
    narrow = _cli(home, "tail", "-n", "5", columns=60).stderr.splitlines()
    assert len(narrow) == 2 and all(len(ln) <= 60 for ln in narrow)  # cut, never wrapped
    r = _cli(home, "tail", "--json")
    entries = json.loads(r.stdout)
    assert [e["seq"] for e in entries] == [1, 2] and entries[0]["record"]["message"] == EVIL
    r = _cli(home, "show", "1")
    assert r.returncode == 0 and "\x1b" not in r.stderr
    assert not {"\u2800", "\u3164", "\u00a0"} & set(r.stderr)
    assert sum("99  2026" in ln for ln in r.stderr.splitlines()) == 1  # still one escaped line
    r = _cli(home, "show", "77")
    assert r.returncode == 2  # not found: exit 2 everywhere


def test_no_store_is_an_input_error(tmp_path: Path) -> None:
    r = _cli(tmp_path / "nowhere", "verify")
    assert r.returncode == 2 and "no store" in r.stderr and r.stdout == ""
