"""The ledger's part of a create as the audit log and a quota window grow, measured interleaved.

`host.bench.scale` compares whole calls in states that follow each other by minutes, which a
shared machine's load moves by more than the 1.2× targets. The only parts of a call whose work
could depend on the log's length or the window's size are the ledger's: the chain head look-up
and append, the exact quota count, the intent and outcome rows. This measures them in-process,
`Ledger.admit` + `Ledger.outcome` of a create-like decision (one quota unit, an op_id, an
intent), on two stores side by side, both warmed, then alternating blocks (A, B, B, A, A, B), so
the load and the process's drift move both sides alike:

- audit: a log of `audit_small` records against one of `audit_big` records;
- window: a quota window holding ~`window_small` units against one holding ~`window_big`.
  Each store's clock (injected, DESIGN conventions) advances `window_s / units` per call, so
  units expire as fast as they are taken and the window's occupancy stays at its size while
  it is measured.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from host.bench.stats import p50
from host.clock import ManualClock
from host.ledger.ledger import Ledger
from host.ledger.records import AuditRecord
from host.store import SqliteStore as Store
from policies.types import QuotaCharge

WINDOW_S = 3600
LIMIT = 50_000  # above any occupancy measured, so no sample is a refusal


@dataclass
class _Side:
    ledger: Ledger
    clock: ManualClock
    step_s: float
    n: int = 0

    def one(self) -> int:
        """One create's ledger work (admit, then its success outcome); ns."""
        self.n += 1
        op = f"op_{self.n}"
        rec = AuditRecord(kind="decision", app_id="bench-creator", install_id="in_bench",
                          action="users.create", args_digest="ab" * 32, op_id=op, write=True,
                          rules=("bench-create",), policy_rev="0" * 64)
        charge = QuotaCharge(key="install:in_bench:users.create", limit=LIMIT,
                             window_s=WINDOW_S, scope="install")
        t0 = time.perf_counter_ns()
        adm = self.ledger.admit(rec, [charge])
        self.ledger.outcome(adm.seq, op, True, None, refund=False)
        dt = time.perf_counter_ns() - t0
        self.clock.advance(self.step_s)
        return dt


def _side(folder: Path, records: int, units: float) -> _Side:
    # A folder each: a ledger keeps its chain's anchor beside its store (`audit.anchor`), and
    # two stores in one folder would each find the other's head there (a rewritten chain to
    # them: every anchoring after the first refused, and logged as such).
    folder.mkdir()
    clock = ManualClock()
    ledger = Ledger(folder / "host.db", clock)
    side = _Side(ledger, clock, WINDOW_S / units)
    for _ in range(int(units) + 50):  # fill the window to its steady occupancy
        side.one()
    assert isinstance(ledger.store, Store)  # the growth bench measures the SQLite store
    _pad(ledger.store, records)
    return side


def _pad(store: Store, total: int) -> None:
    from host.ledger.audit import chain_hash

    conn = store.conn()
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = int(row[0]), str(row[1])
    bodies = [r[0] for r in conn.execute("SELECT body FROM audit ORDER BY seq DESC LIMIT 64")]
    while seq < total:
        rows = []
        for i in range(min(20_000, total - seq)):
            seq += 1
            h = chain_hash(prev, seq, 1.0, bodies[i % len(bodies)])
            rows.append((seq, 1.0, bodies[i % len(bodies)], prev, h))
            prev = h
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO audit(seq, ts, body, prev_hash, hash)"
                         " VALUES(?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")


def _ab(a: _Side, b: _Side, samples: int, pairs: int) -> tuple[list[float], list[float]]:
    """Block medians of each side: both warmed first, then A, B, B, A, A, B, ... (whichever
    side goes first in a pair would otherwise carry the process's drift alone)."""
    for side in (a, b):
        for _ in range(samples // 4):
            side.one()
    ma: list[float] = []
    mb: list[float] = []
    for i in range(pairs):
        for side, out in ((a, ma), (b, mb)) if i % 2 == 0 else ((b, mb), (a, ma)):
            out.append(p50([side.one() / 1000 for _ in range(samples)]))
    return ma, mb


def measure_growth(audit_small: int, audit_big: int, window_small: int, window_big: int,
                   samples: int = 2000, pairs: int = 3) -> dict[str, float]:
    """µs medians (of `pairs` block medians) and their ratios, big over small."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stockade-growth-") as tmp:
        root = Path(tmp)
        small = _side(root / "a", audit_small, window_small)
        big = _side(root / "b", audit_big, window_small)
        ma, mb = _ab(small, big, samples, pairs)
        out["ledger_create_us_audit_small"], out["ledger_create_us_audit_big"] = p50(ma), p50(mb)
        out["ledger_audit_ratio"] = p50(mb) / p50(ma)
        w_small = _side(root / "c", audit_small, window_small)
        w_big = _side(root / "d", audit_small, window_big)
        ma, mb = _ab(w_small, w_big, samples, pairs)
        out["ledger_create_us_window_small"] = p50(ma)
        out["ledger_create_us_window_big"] = p50(mb)
        out["ledger_window_ratio"] = p50(mb) / p50(ma)
        for side in (small, big, w_small, w_big):
            side.ledger.close()
    return out
