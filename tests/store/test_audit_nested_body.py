"""A stored body nested too deeply for the JSON decoder is a bad record `verify` names, never
an error out of `verify` (which then gives no verdict: no exit reason, no `--json`, and a
`serve` that checks the chain at start stops on an unexpected error instead of refusing).

Someone with write access to host.db can append such a row after the anchored seq with its
hash recomputed (the chain's hash is keyless), or put one where a segment record would be.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.audit import GENESIS_HASH, AuditLog, AuditRecord, chain_hash

T0 = 1_700_000_000.0
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJ = '{"kind":"segment","detail":' + "[" * 100_000 + "]" * 100_000 + "}"


def _home(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "host.db", ManualClock(T0), anchor_every=4)
    for i in range(3):
        log.append(AuditRecord(kind="supervisor", event="test", detail=f"r{i}"))
    log.close()


def _append_raw(tmp_path: Path, body: str, *, segment: bool) -> None:
    c = sqlite3.connect(tmp_path / "host.db", isolation_level=None)
    seq, h = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = GENESIS_HASH if segment else h
    c.execute("INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)",
              (seq + 1, T0, body, prev, chain_hash(prev, seq + 1, T0, body)))
    c.close()


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJ], ids=["array", "object"])
@pytest.mark.parametrize("segment", [False, True], ids=["chained", "as-segment"])
def test_a_deeply_nested_body_is_a_bad_record(tmp_path: Path, body: str,
                                              segment: bool) -> None:
    _home(tmp_path)
    _append_raw(tmp_path, body, segment=segment)
    log = AuditLog(tmp_path / "host.db", ManualClock(T0), readonly=True)
    res = log.verify()
    assert not res.ok and res.first_bad_seq == 4, res
    json.dumps(res.to_json())  # a verdict `--json` can print
