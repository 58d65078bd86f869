"""Exact durable quotas: boundary semantics, the fixed-window attack, restarts, clock steps, refunds."""
from __future__ import annotations

from pathlib import Path

import pytest

from host.clock import ManualClock
from host.ledger.quota import Charge, QuotaDenied, QuotaStore, Reservation
from tests.store.conftest import Db

T0 = 1_700_000_000.0


def _store(db: Db, clock: ManualClock) -> QuotaStore:
    return db.quotas(clock)


def _take(q: QuotaStore, ch: Charge, op: str) -> bool:
    return isinstance(q.reserve([ch], op), Reservation)


def test_n_then_refused_then_one_frees_exactly_at_w(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    ch = Charge("app:a:users.create", 5, 60.0)
    for i in range(5):
        assert _take(q, ch, f"op{i}")
        clock.advance(1.0)  # units at T0, T0+1, ..., T0+4
    clock.set(T0 + 59.999)
    denied = q.reserve([ch], "late")
    assert isinstance(denied, QuotaDenied)
    assert denied.state.used == 5 and denied.state.next_free_at == T0 + 60.0
    assert "app:a:users.create" in denied.message and "at most 5 per 60s" in denied.message
    # Boundary: a unit taken at t counts during [t, t+W) and is free again at exactly t+W.
    clock.set(T0 + 60.0)
    assert _take(q, ch, "a")
    assert not _take(q, ch, "b")  # only the unit from T0 freed; the next frees at T0+61
    clock.set(T0 + 61.0)
    assert _take(q, ch, "c")
    st = q.state(ch.key, ch.limit, ch.window_s)
    assert st.used == 5 and st.next_free_at == T0 + 62.0


def test_no_2n_around_a_fixed_window_boundary(db: Db) -> None:
    """The classic attack on a fixed window: N at the end of one window, N at the start of the next."""
    clock = ManualClock(T0)
    q = _store(db, clock)
    ch = Charge("app:a:bridge", 10, 60.0)
    clock.set(T0 + 59.0)
    assert sum(_take(q, ch, f"x{i}") for i in range(10)) == 10
    clock.set(T0 + 60.5)  # a fixed 60 s window would have reset here
    assert sum(_take(q, ch, f"y{i}") for i in range(10)) == 0
    clock.set(T0 + 59.0 + 60.0)
    assert sum(_take(q, ch, f"z{i}") for i in range(20)) == 10
    # Any window of 60 s holds at most 10 admitted units.


def test_all_or_none_across_charges(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    small = Charge("install:i1:users.create", 1, 60.0)
    big = Charge("app:a:users.create", 100, 60.0, "app")
    assert isinstance(q.reserve([big, small], "op1"), Reservation)
    r = q.reserve([big, small], "op2")
    assert isinstance(r, QuotaDenied) and r.state.key == small.key
    # Nothing was taken on the big quota by the refused call.
    assert q.state(big.key, big.limit, big.window_s).used == 1


def test_restart_keeps_the_count(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    ch = Charge("k", 3, 100.0)
    for i in range(3):
        assert _take(q, ch, f"op{i}")
    q.close()
    q2 = _store(db, clock)
    assert not _take(q2, ch, "after-restart")
    assert q2.state("k", 3, 100.0).used == 3


def test_clock_stepping_back_never_frees_units(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    ch = Charge("k", 2, 10.0)
    clock.set(T0 + 1000.0)
    assert _take(q, ch, "a") and _take(q, ch, "b")
    clock.set(T0)  # wall clock steps back 1000 s
    assert not _take(q, ch, "c")
    clock.set(T0 + 1009.0)  # still inside the original window
    assert not _take(q, ch, "d")
    q.close()
    q = _store(db, clock)  # the high-water mark survives a restart too
    clock.set(T0 + 500.0)
    assert not _take(q, ch, "e")
    clock.set(T0 + 1010.0)
    assert _take(q, ch, "f")


def test_refund_newest_restores_the_slot(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    ch = Charge("k", 2, 60.0)
    assert _take(q, ch, "a")
    clock.advance(1)
    assert _take(q, ch, "b")
    clock.advance(1)
    r = q.reserve([ch], "c")
    assert isinstance(r, QuotaDenied)
    clock.set(T0 + 60.0)  # "a" freed
    r = q.reserve([ch], "c")
    assert isinstance(r, Reservation)
    assert q.refund(r)
    # Refunding "c" brings back exactly the state before it: "a" free, "b" counted.
    st = q.state("k", 2, 60.0)
    assert st.used == 1
    assert _take(q, ch, "d")
    assert not _take(q, ch, "e")


def test_refund_out_of_order(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    ch = Charge("k", 3, 60.0)
    rs = []
    for op in "abcde":  # a, b evicted from the ring by d, e
        r = q.reserve([ch], op)
        if isinstance(r, Reservation):
            rs.append(r)
        clock.advance(30)
    # times: a=0 b=30 c=60 (denied? no: a,b,c all fit) d=90 e=120
    assert [r.op_id for r in rs] == ["a", "b", "c", "d", "e"][: len(rs)]
    assert q.refund(rs[2])  # refund "c" while d and e are newer
    # Counted now (t=150, W=60): e(120) only? d=90 is outside. The ring must equal the
    # reference "last 3 non-refunded": b(30), d(90), e(120).
    st = q.state("k", 3, 60.0)
    assert st.used == 1


def test_limit_change_rebuilds_the_ring(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    for i in range(5):
        assert _take(q, Charge("k", 5, 60.0), f"a{i}")
    # Policy tightened to 3: already 5 in the window, nothing more.
    assert not _take(q, Charge("k", 3, 60.0), "b")
    # Policy loosened to 8: 3 more.
    assert sum(_take(q, Charge("k", 8, 60.0), f"c{i}") for i in range(5)) == 3


def test_shrink_then_grow_forgets_nothing_in_the_window(db: Db) -> None:
    clock = ManualClock(T0)
    q = _store(db, clock)
    for i in range(5):
        assert _take(q, Charge("k", 5, 60.0), f"a{i}")
    clock.advance(1)
    assert not _take(q, Charge("k", 2, 60.0), "b")
    # Back to 5: all five units are still inside the window.
    assert not _take(q, Charge("k", 5, 60.0), "c")
    assert q.state("k", 5, 60.0).used == 5


@pytest.mark.parametrize("bad", [
    Charge("k", 0, 60.0), Charge("k", -1, 60.0), Charge("k", 10**9, 60.0),
    Charge("k", 5, 0.0), Charge("k", 5, float("inf")), Charge("k", 5, float("nan")),
    Charge("", 5, 60.0), Charge("k" * 300, 5, 60.0),
])
def test_absurd_charges_refused(db: Db, bad: Charge) -> None:
    q = _store(db, ManualClock(T0))
    with pytest.raises(ValueError):
        q.reserve([bad], "op")


def test_duplicate_key_in_one_operation_refused(db: Db) -> None:
    q = _store(db, ManualClock(T0))
    with pytest.raises(ValueError):
        q.reserve([Charge("k", 5, 60.0), Charge("k", 5, 60.0)], "op")


def test_a_version_1_ring_upgrades_and_counts_on(tmp_path: Path) -> None:
    """A home written before the kept count (quota schema 1: no `used`, no `tw`) opens, gains
    the columns, and its first charge counts the ring's units itself."""
    import sqlite3

    from host.ledger.quota import reserve_in

    db = tmp_path / "host.db"
    c = sqlite3.connect(db)
    c.executescript(
        "CREATE TABLE schema_meta(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        " WITHOUT ROWID;"
        "INSERT INTO schema_meta VALUES('quota', 1);"
        "CREATE TABLE quota_keys(key TEXT PRIMARY KEY, cap INTEGER NOT NULL,"
        " head INTEGER NOT NULL, hw REAL NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE quota_slots(key TEXT NOT NULL, slot INTEGER NOT NULL, ts REAL NOT NULL,"
        " op TEXT, PRIMARY KEY(key, slot)) WITHOUT ROWID;"
        # a ring of 3 holding two units, taken at T0 and T0 + 5 (head: the next slot)
        f"INSERT INTO quota_keys VALUES('k', 3, 2, {T0 + 5});"
        f"INSERT INTO quota_slots VALUES('k', 0, {T0}, 'a'), ('k', 1, {T0 + 5}, 'b');")
    c.commit()
    c.close()
    clock = ManualClock(T0 + 8)  # both units still counted (a 10 s window)
    q = QuotaStore(db, clock)
    try:
        with q.store.transaction() as conn:
            got, states = reserve_in(conn, [Charge("k", 3, 10.0)], "c", clock.now())
        assert isinstance(got, Reservation) and states[0].used == 3
        clock.advance(4)  # the first unit freed at T0 + 10
        with q.store.transaction() as conn:
            got, states = reserve_in(conn, [Charge("k", 3, 10.0)], "d", clock.now())
        assert isinstance(got, Reservation) and states[0].used == 3  # b, c and d
    finally:
        q.close()


def test_a_version_2_store_carries_its_units_to_the_keys_that_name_their_quota(
        tmp_path: Path) -> None:
    """Before quota schema 3 a key named its quota (`...#<quota id>`) only when another quota
    charged the same key, so a store upgraded from 2 holds most rings under the bare key. Each
    quota's first charge on the upgraded store takes in the bare key's units (once): the
    upgrade never gives a quota a fresh window."""
    import sqlite3

    db = tmp_path / "host.db"
    c = sqlite3.connect(db)
    c.executescript(
        "CREATE TABLE schema_meta(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        " WITHOUT ROWID;"
        "INSERT INTO schema_meta VALUES('quota', 2);"
        "CREATE TABLE quota_keys(key TEXT PRIMARY KEY, cap INTEGER NOT NULL,"
        " head INTEGER NOT NULL, hw REAL NOT NULL, used BIGINT, tw DOUBLE PRECISION)"
        " WITHOUT ROWID;"
        "CREATE TABLE quota_slots(key TEXT NOT NULL, slot INTEGER NOT NULL, ts REAL NOT NULL,"
        " op TEXT, PRIMARY KEY(key, slot)) WITHOUT ROWID;"
        # one quota alone on the install's creations: its two units under the bare key
        f"INSERT INTO quota_keys VALUES('install:i:users.create', 2, 0, {T0 + 1}, 2, 3600);"
        f"INSERT INTO quota_slots VALUES('install:i:users.create', 0, {T0}, 'a'),"
        f" ('install:i:users.create', 1, {T0 + 1}, 'b');"
        # a workspace quota counted on both rings (the bug): one unit on each
        f"INSERT INTO quota_keys VALUES('workspace:users.create', 2, 1, {T0 + 2}, 1, 3600);"
        f"INSERT INTO quota_slots VALUES('workspace:users.create', 0, {T0 + 2}, 'c');"
        f"INSERT INTO quota_keys VALUES('workspace:users.create#ws', 2, 1, {T0 + 3}, 1, 3600);"
        f"INSERT INTO quota_slots VALUES('workspace:users.create#ws', 0, {T0 + 3}, 'd');")
    c.commit()
    c.close()
    clock = ManualClock(T0 + 10)
    q = QuotaStore(db, clock)
    try:
        assert not _take(q, Charge("install:i:users.create#q", 2, 3600.0), "e")
        assert not _take(q, Charge("workspace:users.create#ws", 2, 3600.0, "workspace"), "f")
        # A second quota on the same bare key takes in the same units, and only once.
        wide = Charge("install:i:users.create#wide", 4, 3600.0)
        assert _take(q, wide, "g") and _take(q, wide, "h")
        assert not _take(q, wide, "i")
        assert q.state(wide.key, wide.limit, wide.window_s).used == 4
        # The carried units free when their own window ends.
        clock.set(T0 + 3600.0)
        assert _take(q, Charge("install:i:users.create#q", 2, 3600.0), "j")
    finally:
        q.close()
