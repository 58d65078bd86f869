"""A refund that is not of a ring's newest unit costs what is newer than it, not the whole ring.

On a ring shared by callers (hosts serving one home run every app, so an install's own calls
race on its rings; an app- or workspace-scoped quota is shared by every install), a refused
call's unit is often not the newest when its refund comes. That refund rewrote the whole ring:
at the largest limit a policy may set (`MAX_QUOTA_LIMIT`, 100,000) ~0.5 s under the store's
write lock, stalling every host, up to `REFUSAL_BUDGET` times a minute per install.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.quota import Charge, QuotaStore, Reservation, _load, refund_in, reserve_in
from tests.store.conftest import Db

T0 = 1_700_000_000.0


def _fill(q: QuotaStore, ch: Charge, n: int) -> list[Reservation]:
    made = []
    with q.store.transaction() as c:
        for i in range(n):
            r, _ = reserve_in(c, [ch], f"op{i}", T0 + i)
            assert isinstance(r, Reservation)
            made.append(r)
    return made


def test_an_out_of_order_refund_writes_only_the_units_newer_than_it(tmp_path: Path) -> None:
    """Fails before: ~4,000 rows written (the ring deleted and inserted again) to give back a
    unit with one newer than it."""
    q = QuotaStore(tmp_path / "host.db", ManualClock(T0), store_clock=False)
    ch = Charge("install:i1:persistence.put#big", 2_000, 86_400.0)
    made = _fill(q, ch, 2_000)
    conn = q.store.conn()
    assert isinstance(conn, sqlite3.Connection)
    before = conn.total_changes
    with q.store.transaction() as c:
        assert refund_in(c, made[-2])
    assert conn.total_changes - before <= 5
    with q.store.transaction() as c:
        loaded = _load(c, ch.key)
    assert loaded is not None
    assert [op for _ts, op in loaded[2]] == [f"op{i}" for i in range(2_000) if i != 1_998]
    q.close()


@pytest.mark.parametrize("cap, extra, newer", [
    (50, 0, 17), (50, 0, 49), (50, 23, 1), (50, 23, 30), (300, 170, 250), (40, -15, 24),
])
def test_a_refund_leaves_the_ring_a_fresh_layout_would(db: Db, cap: int, extra: int,
                                                       newer: int) -> None:
    """The ring after a refund holds every other unit oldest-first, empty slots first, and
    admits as before: wrapped rings (`extra` units past the capacity moved the head), rings not
    full (`extra` < 0), and more newer units than one read takes; on both stores."""
    q = db.quotas(ManualClock(T0))
    ch = Charge("workspace:*#shared", cap, float(cap))  # unit i frees once cap more came
    made = _fill(q, ch, cap + extra)
    gone = made[-1 - newer]
    with q.store.transaction() as c:
        assert refund_in(c, gone)
        cap_now, _hw, units = _load(c, ch.key) or (0, 0.0, [])
        slots = {int(r[0]): r[1] for r in c.execute(
            "SELECT slot, op FROM quota_slots WHERE key=?", (ch.key,))}
        head = int(c.execute("SELECT head FROM quota_keys WHERE key=?",
                             (ch.key,)).fetchone()[0])
    kept = [r.op_id for r in made[max(0, extra):] if r is not gone]
    assert cap_now == cap and [op for _ts, op in units] == kept
    # Empty slots first: the units fill the ring's newest positions without a gap.
    assert [(head + p) % cap in slots for p in range(cap)] == \
        [False] * (cap - len(kept)) + [True] * len(kept)
    # As many units are free as the ring lacks, and no more.
    now, admitted = T0 + cap + extra - 1, 0
    with q.store.transaction() as c:
        while isinstance(reserve_in(c, [ch], f"again{admitted}", now)[0], Reservation):
            admitted += 1
            assert admitted <= cap
    assert admitted == cap - len(kept)
    q.close()
