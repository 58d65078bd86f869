"""Exact, durable quotas: "at most N units in any window of W seconds", shared by all processes.

The structure (per quota key) is the *last-N-timestamps ring*: a ring of `cap` slots (cap = the
largest limit ever charged on the key, so normally N) holding the timestamps of the most recent
units, laid out oldest-first from `head`. A unit is admitted iff the slot holding the N-th most
recent unit is empty or that unit has freed; the new unit then overwrites the oldest slot. That
is exactly the sliding-window log's answer (if the N-th most recent unit is outside the window,
fewer than N are inside) in O(1) reads and writes per unit and at most `cap` rows per key,
whatever the traffic — unlike a count over a growing log, and unlike a fixed window or a token
bucket, which let up to 2N through around a boundary.

Boundary semantics (tested): a unit taken at time t counts during [t, t + W) and is free again at
exactly t + W. So at time `now` the units counted are those with `t + W > now`.

Time: the host passes wall-clock time (the database server's on a PostgreSQL store several
hosts share, `Store.clock_in`, since the hosts' own clocks may disagree; else its own), which
may step backwards (NTP, a VM restore). Each key keeps a high-water mark `hw`; the effective
time is `max(now, hw)`, so stepping the clock back never frees a unit (units stay counted until
the wall clock passes their original expiry), and timestamps in a ring never decrease, which
keeps the ring sorted.

Why forgetting is exact: a slot is overwritten only when a unit is admitted, i.e. when the N-th
most recent unit has freed; the overwritten unit is older still, so it had freed too, and since
the effective time never decreases it stays free for good. An empty slot and a forgotten unit
therefore mean the same thing. This is what makes refunds and limit changes exact without
keeping history:

- refund: the unit is removed from the ring; newer units move one slot back and an empty slot
  takes the oldest position (O(1) when the unit is the newest, the usual case: the call that
  failed was the last one admitted; otherwise O(units newer than it), not a re-layout of the
  whole ring: callers sharing a ring make out-of-order refunds common, and an app can cause
  them);
- a policy lowers N: the ring keeps its capacity, so raising N again later still sees every unit
  that is inside the window; a policy raises N above `cap`: the ring is re-laid out larger.

Durability and concurrency: the rings live in `host.db` (WAL). Every check-and-take runs inside
one `BEGIN IMMEDIATE` transaction, which takes the database write lock before reading; several
host processes sharing the file therefore admit exactly N. Several charges (per-install,
per-app, per-workspace, a seat) are reserved all or none in that one transaction.

Seats: a workspace ceiling on active app-created users (billed seats). There is no seat counter
to release or to drift: the caller (the ledger) passes the seats in use, counted from the truth
at the moment of the check — the server's active app-created users, whatever route created or
reactivated them, plus the creations admitted but not yet applied — and the check runs in the same
transaction as the charges (`host.ledger.ledger`).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from host.clock import Clock
from host.store import Conn, Step, Store, ensure_schema, open_store, table_exists
from policies.quota import MAX_QUOTA_LIMIT, MAX_SEATS, MAX_WINDOW_S

SCHEMA_COMPONENT = "quota"
SCHEMA_VERSION = 3

# MAX_QUOTA_LIMIT, MAX_WINDOW_S and MAX_SEATS live with the pure quota math (policies.quota),
# which the policy loader checks files against: one source for both (see there what each
# guards). `validate_charge` and `reserve_in` still refuse a value past them (ValueError), for a
# policy that reached the gate by another path; the gate records that as a refusal.

# Longest quota key (characters): keys are built by the host ("app:<id>:<action>#<quota id>",
# at most 230 characters from a policy that loads); the cap guards the index from an app id
# smuggled in at absurd length.
MAX_KEY_LEN = 256

SEATS_KEY = "workspace:seats"

DDL = (
    # cap: ring size (largest limit seen); head: the slot holding the oldest unit (written
    # next); hw: time high-water mark.
    "CREATE TABLE IF NOT EXISTS quota_keys("
    " key TEXT PRIMARY KEY, cap INTEGER NOT NULL, head INTEGER NOT NULL, hw REAL NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS quota_slots("
    " key TEXT NOT NULL, slot INTEGER NOT NULL, ts REAL NOT NULL, op TEXT,"
    " PRIMARY KEY(key, slot)) WITHOUT ROWID",
    # Version 2: the units still counted at `hw` over a window of `tw` seconds (a suffix of the
    # ring), kept so a charge need not count them again (`_counted`); NULL: not known, counted
    # by `_CHECK_SQL` at the next charge. Only the records' `used` comes from it: admission
    # reads the N-th most recent unit alone, as before.
    Step(2, "ALTER TABLE quota_keys ADD COLUMN used BIGINT"),
    Step(2, "ALTER TABLE quota_keys ADD COLUMN tw DOUBLE PRECISION"),
    # Version 3: every key the policy engine builds names its quota ("...#<quota id>"); before,
    # a key did so only while another quota met it on the same key, so a store written then
    # holds most rings under the bare key. `carried` is set once a key's ring holds its bare
    # key's units (`_carry_bare`); NULL: not yet (a ring from before version 3).
    Step(3, "ALTER TABLE quota_keys ADD COLUMN carried SMALLINT"),
)
# (`quota_seats`, the old seat counter, may linger in stores created before seats were counted
# from the truth; nothing reads it.)


class QuotaCharge(Protocol):
    """What the policy engine asks the host to reserve (`policies.types.QuotaCharge` fits it;
    a Protocol keeps the store free of the engine)."""

    @property
    def key(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def window_s(self) -> float: ...
    @property
    def scope(self) -> str: ...


@dataclass(frozen=True)
class Charge:
    """A concrete `QuotaCharge` (for callers and tests that do not use the policy engine's type)."""

    key: str
    limit: int
    window_s: float
    scope: str = "install"


@dataclass(frozen=True)
class QuotaState:
    """A quota as the operator sees it. `next_free_at` is None while a unit is free now."""

    key: str
    used: int
    limit: int
    window_s: float
    next_free_at: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key, "used": self.used, "limit": self.limit,
            "window_s": self.window_s, "next_free_at": self.next_free_at,
        }


@dataclass(frozen=True)
class Reservation:
    """Units taken for one operation (opaque to the gate; pass it back to refund)."""

    op_id: str
    keys: tuple[str, ...]
    seat: bool


@dataclass(frozen=True)
class QuotaDenied:
    """Nothing was reserved: `state` is the first quota (or the seat ceiling) that was full."""

    state: QuotaState
    states: tuple[QuotaState, ...]
    message: str


def validate_charge(ch: QuotaCharge) -> None:
    """Refuse a charge the ring cannot honour exactly (raises ValueError)."""
    if not isinstance(ch.key, str) or not 0 < len(ch.key) <= MAX_KEY_LEN:
        raise ValueError("quota key must be a non-empty string of at most 256 characters")
    if isinstance(ch.limit, bool) or not isinstance(ch.limit, int):
        raise ValueError(f"quota {ch.key}: limit must be an int")
    if not 1 <= ch.limit <= MAX_QUOTA_LIMIT:
        raise ValueError(f"quota {ch.key}: limit {ch.limit} outside 1..{MAX_QUOTA_LIMIT}")
    w = float(ch.window_s)
    if not (math.isfinite(w) and 0 < w <= MAX_WINDOW_S):
        raise ValueError(f"quota {ch.key}: window {ch.window_s!r} outside (0, {MAX_WINDOW_S}]")


def _fmt_ts(ts: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def denial_message(st: QuotaState, now: float) -> str:
    """The app-facing text for a full quota: key, limit, window and when a unit frees."""
    if st.key == SEATS_KEY:
        return (
            f"quota {st.key} exceeded: the workspace allows at most {st.limit} active "
            "app-created users; a seat frees when one is deactivated"
        )
    when = ""
    if st.next_free_at is not None:
        when = f"; next unit frees at {_fmt_ts(st.next_free_at)} (in {st.next_free_at - now:.3f}s)"
    return (
        f"quota {st.key} exceeded: at most {st.limit} per {st.window_s:g}s "
        f"({st.used} used){when}"
    )


# ---------------------------------------------------------------------------------------------
# Ring primitives. They run on a connection that is already inside BEGIN IMMEDIATE.

Unit = tuple[float, "str | None"]  # (timestamp, op_id)
SlotUnit = tuple[int, float, object]  # (slot, timestamp, op_id) as a refund reads them


def _load(conn: Conn, key: str) -> tuple[int, float, list[Unit]] | None:
    """(cap, hw, units oldest-first) or None for a key never charged."""
    k = conn.execute("SELECT cap, head, hw FROM quota_keys WHERE key=?", (key,)).fetchone()
    if k is None:
        return None
    cap, head = int(k[0]), int(k[1])
    rows = {int(r[0]): (float(r[1]), r[2])
            for r in conn.execute("SELECT slot, ts, op FROM quota_slots WHERE key=?", (key,))}
    units = [rows[(head + p) % cap] for p in range(cap) if (head + p) % cap in rows]
    return cap, float(k[2]), units


def _store_ring(conn: Conn, key: str, cap: int, hw: float,
                units: list[Unit]) -> None:
    """Rewrite a key's ring with head=0: empty slots first, then `units` oldest-first."""
    conn.execute("DELETE FROM quota_slots WHERE key=?", (key,))
    first = cap - len(units)
    conn.executemany(
        "INSERT INTO quota_slots(key, slot, ts, op) VALUES(?, ?, ?, ?)",
        [(key, first + i, ts, op) for i, (ts, op) in enumerate(units)],
    )
    conn.execute(
        "INSERT INTO quota_keys(key, cap, head, hw) VALUES(?, ?, 0, ?) "
        "ON CONFLICT(key) DO UPDATE SET cap=excluded.cap, head=0, hw=excluded.hw,"
        " used=NULL, tw=NULL",
        (key, cap, hw),
    )


def _grow(conn: Conn, key: str, cap: int) -> None:
    """A policy raised N above the ring's capacity: re-lay the ring out larger (rare)."""
    loaded = _load(conn, key)
    if loaded is not None:
        _store_ring(conn, key, cap, loaded[1], loaded[2])


# One statement per charge (the hot path pays per statement): the ring's cap, head and
# high-water mark, the timestamp in the slot holding the N-th most recent unit, and the units
# still counted. The count is a binary search over ring positions run inside SQLite by a
# recursive CTE: timestamps are non-decreasing from the head (empty slots first), so the
# positions whose unit still counts (ts + W > eff) form a suffix, and `cap - first` is the count.
# O(log cap) primary-key look-ups, never a scan of the window.
# ?1=N ?2=key ?3=W ?4=now. Portable SQL (host.store.base): CASE, not SQLite's two-argument max().
_CHECK_SQL = """
WITH RECURSIVE
  k(cap, head, hw, eff) AS (
    SELECT cap, head, hw, CASE WHEN ?4 > hw THEN ?4 ELSE hw END FROM quota_keys WHERE key = ?2),
  bs(lo, hi) AS (
    SELECT CAST(0 AS BIGINT), cap FROM k
    UNION ALL
    SELECT CASE WHEN s.ts IS NOT NULL AND s.ts + ?3 > k.eff THEN bs.lo
                ELSE (bs.lo + bs.hi) / 2 + 1 END,
           CASE WHEN s.ts IS NOT NULL AND s.ts + ?3 > k.eff THEN (bs.lo + bs.hi) / 2
                ELSE bs.hi END
    FROM bs CROSS JOIN k LEFT JOIN quota_slots s
      ON s.key = ?2 AND s.slot = (k.head + (bs.lo + bs.hi) / 2) % k.cap
    WHERE bs.lo < bs.hi)
SELECT k.cap, k.head, k.hw,
  (SELECT ts FROM quota_slots WHERE key = ?2 AND slot = (k.head - ?1 + k.cap) % k.cap),
  k.cap - (SELECT max(lo) FROM bs)
FROM k
"""


# A charge's one read: the ring's cap, head and high-water mark, the units counted at `hw` over
# `tw` seconds (see DDL), the timestamp of the N-th most recent unit (the admission's answer)
# and of the oldest unit counted at `hw` (the first that may have freed since), and whether the
# ring has taken in its bare key's units (DDL, version 3).
# ?1=N ?2=key.
_CHARGE_SQL = """
SELECT k.cap, k.head, k.hw, k.used, k.tw, n.ts, o.ts, k.carried
FROM quota_keys k
  LEFT JOIN quota_slots n ON n.key = k.key AND n.slot = (k.head - ?1 + k.cap) % k.cap
  LEFT JOIN quota_slots o ON o.key = k.key AND o.slot = (k.head - k.used + k.cap) % k.cap
WHERE k.key = ?2
"""
_SLOT_TS_SQL = "SELECT ts FROM quota_slots WHERE key = ? AND slot = ?"


def _counted(conn: Conn, ch: QuotaCharge, w: float, now: float, row: Any) -> int:
    """The units still counted at max(now, hw): what `_CHECK_SQL` counts, from the count kept
    at `hw` (row: a `_CHARGE_SQL` row). Timestamps never decrease along the ring and the
    effective time never goes back, so the units counted now are a suffix of those counted at
    `hw`: only its oldest end can have freed, each unit once (amortised one look-up a charge
    instead of the binary search's O(log cap)). Kept for another window, or not kept: counted."""
    cap, head, hw = int(row[0]), int(row[1]), float(row[2])
    kept, tw, oldest = row[3], row[4], row[6]
    eff = max(now, hw)
    if kept is None or tw is None or float(tw) != w or not 0 <= int(kept) <= cap:
        return state_in(conn, ch.key, ch.limit, w, now).used
    n = int(kept)
    while n > 0:
        if oldest is None:  # a counted unit's slot is empty: the kept count is wrong
            return state_in(conn, ch.key, ch.limit, w, now).used
        if float(oldest) + w > eff:
            break
        n -= 1
        if n:
            got = conn.execute(_SLOT_TS_SQL, (ch.key, (head - n) % cap)).fetchone()
            oldest = None if got is None else got[0]
    return n


def _carry_bare(conn: Conn, ch: QuotaCharge, row: Any) -> bool:
    """Upgrade from quota schema 2, once per key: the ring of `ch` (`row`, a `_CHARGE_SQL` row,
    or None for a key never charged) takes in the units of its bare key (the key without
    "#<quota id>"), under which schema 2 counted the quota whenever no other quota met it.
    Without this every quota would start from an empty window once at the upgrade: looser.

    Copied, not moved: several quotas may have counted on one bare key, and each takes the
    units in (stricter than exact for a quota that did not count them, for one window at most;
    never looser). The ring keeps the newest `cap` units of both, `cap` being the largest
    limit either ring held, which is what decides every admission up to it. An intent admitted
    before the upgrade and settled after it refunds the bare key only: its unit stays counted
    here until its window ends (stricter, never looser). True if the ring changed."""
    bare = ch.key.rpartition("#")[0]
    if not bare:
        return False  # a key that names no quota (the refusal budget's): nothing to carry
    old = _load(conn, bare)
    if old is None:
        if row is not None:
            conn.execute("UPDATE quota_keys SET carried=1 WHERE key=?", (ch.key,))
        return False  # a key never charged is marked by its first insert
    mine = _load(conn, ch.key)
    cap = max(ch.limit, old[0], mine[0] if mine else 0)
    hw = max(old[1], mine[1] if mine else old[1])
    units = sorted([*old[2], *(mine[2] if mine else [])], key=lambda u: u[0])[-cap:]
    _store_ring(conn, ch.key, cap, hw, units)
    conn.execute("UPDATE quota_keys SET carried=1 WHERE key=?", (ch.key,))
    return True


def seems_full(conn: Conn, ch: QuotaCharge, now: float) -> bool:
    """Whether `ch` looks full at `now` by its N-th most recent unit, as `reserve_in` decides,
    in one read outside any transaction (takes, grows and carries over nothing). A hint for
    sparing work before an admission (`host.gate.httpquota`): True is confirmed on the log's
    transaction, and a ring this cannot read so (smaller than the limit, or not yet carried
    over from schema 2) says False, leaving the admission to decide as always."""
    if ch.limit <= 0:
        return True
    # A lone read: run once more on a fresh session if the store's had ended (`pg.lone_select`).
    row = conn.execute(_CHARGE_SQL, (ch.limit, ch.key)).fetchone()
    if row is None or row[7] is None or int(row[0]) < ch.limit or row[5] is None:
        return False
    return float(row[5]) + float(ch.window_s) > max(now, float(row[2]))


def state_in(conn: Conn, key: str, limit: int, window_s: float,
             now: float) -> QuotaState:
    """Current state of one quota (effective time = max(now, high-water))."""
    w = float(window_s)
    row = conn.execute(_CHECK_SQL, (limit, key, w, now)).fetchone()
    if row is None:
        return QuotaState(key, 0, limit, w, None)
    cap, hw, nth, used = int(row[0]), float(row[2]), row[3], int(row[4])
    eff = max(now, hw)
    nxt: float | None = None
    if limit <= cap and nth is not None and nth + w > eff:
        nxt = float(nth) + w
    return QuotaState(key, used, limit, w, nxt)


def reserve_in(conn: Conn, charges: Sequence[QuotaCharge], op_id: str, now: float,
               seats: tuple[int, int] | None = None) -> tuple[Reservation | QuotaDenied,
                                                              tuple[QuotaState, ...]]:
    """Check every charge (and the seat ceiling), then take them all or none.

    `seats` is (ceiling, seats in use now, counted from the truth by the caller inside this
    transaction); the operation takes a seat when it is admitted. Returns the outcome and the
    quota states after it (what the audit record stores).
    """
    # Everything is checked before anything is read or written (a ValueError leaves the
    # transaction as it found it; the gate records it as a refusal).
    if seats is not None and (isinstance(seats[0], bool) or not 0 <= seats[0] <= MAX_SEATS):
        raise ValueError(f"seat ceiling {seats[0]!r} outside 0..{MAX_SEATS}")
    seen: set[str] = set()
    for ch in charges:
        validate_charge(ch)
        if ch.key in seen:
            raise ValueError(f"quota {ch.key} charged twice in one operation")
        seen.add(ch.key)
    heads: list[tuple[QuotaCharge, int, int, float, int]] = []  # (charge, cap, head, eff, used)
    before: list[QuotaState] = []  # states with nothing taken
    denied: QuotaState | None = None
    for ch in charges:
        w = float(ch.window_s)
        row = conn.execute(_CHARGE_SQL, (ch.limit, ch.key)).fetchone()
        if (row is None or row[7] is None) and _carry_bare(conn, ch, row):
            row = conn.execute(_CHARGE_SQL, (ch.limit, ch.key)).fetchone()
        if row is not None and int(row[0]) < ch.limit:
            _grow(conn, ch.key, ch.limit)
            row = conn.execute(_CHARGE_SQL, (ch.limit, ch.key)).fetchone()
        if row is None:
            heads.append((ch, ch.limit, -1, now, 0))
            before.append(QuotaState(ch.key, 0, ch.limit, w, None))
            continue
        cap, head, eff, nth = int(row[0]), int(row[1]), max(now, float(row[2])), row[5]
        used = _counted(conn, ch, w, now, row)
        heads.append((ch, cap, head, eff, used))
        # Admit iff the N-th most recent unit is absent or has freed (t + W <= now).
        if nth is not None and nth + w > eff:
            st = QuotaState(ch.key, used, ch.limit, w, float(nth) + w)
            denied = denied or st
        else:
            st = QuotaState(ch.key, used, ch.limit, w, None)
        before.append(st)
    if seats is not None:
        seat_ceiling, seat_used = seats
        st = QuotaState(SEATS_KEY, seat_used, seat_ceiling, 0.0, None)
        if seat_used >= seat_ceiling:
            denied = denied or st
        before.append(st)
    if denied is not None:
        return QuotaDenied(denied, tuple(before), denial_message(denied, now)), tuple(before)
    after = tuple(QuotaState(s.key, s.used + 1, s.limit, s.window_s, None) for s in before)
    for ch, cap, head, eff, used in heads:
        if head < 0:
            # carried=1: a ring created at schema 3 has nothing left to take in.
            conn.execute("INSERT INTO quota_keys(key, cap, head, hw, used, tw, carried)"
                         " VALUES(?, ?, ?, ?, 1, ?, 1)", (ch.key, cap, 1 % cap, eff,
                                                          float(ch.window_s)))
            conn.execute("INSERT INTO quota_slots(key, slot, ts, op) VALUES(?, 0, ?, ?)",
                         (ch.key, eff, op_id))
            continue
        # Overwrite the oldest slot (its unit, if any, has freed for good: module docstring).
        conn.execute(
            "INSERT INTO quota_slots(key, slot, ts, op) VALUES(?, ?, ?, ?) "
            "ON CONFLICT(key, slot) DO UPDATE SET ts=excluded.ts, op=excluded.op",
            (ch.key, head, eff, op_id),
        )
        # The units counted at `eff`, and this one (t + W > t).
        conn.execute("UPDATE quota_keys SET head=?, hw=?, used=?, tw=? WHERE key=?",
                     ((head + 1) % cap, eff, used + 1, float(ch.window_s), ch.key))
    return Reservation(op_id, tuple(ch.key for ch in charges), seats is not None), after


def _refund_key(conn: Conn, key: str, op_id: str) -> bool:
    row = conn.execute(
        "SELECT k.cap, k.head, s.op FROM quota_keys k LEFT JOIN quota_slots s"
        " ON s.key = k.key AND s.slot = (k.head + k.cap - 1) % k.cap WHERE k.key = ?", (key,)
    ).fetchone()
    if row is None:
        return False
    cap, head = int(row[0]), int(row[1])
    newest = (head + cap - 1) % cap
    if row[2] == op_id:
        # Fast path: the newest unit. Its slot becomes empty and, as the new head, the oldest.
        conn.execute("DELETE FROM quota_slots WHERE key=? AND slot=?", (key, newest))
        # The newest unit is in the counted suffix kept at `hw` iff that suffix is not empty.
        conn.execute("UPDATE quota_keys SET head=?, used=CASE WHEN used > 0 THEN used - 1"
                     " ELSE used END WHERE key=?", (newest, key))
        return True
    # Another unit is newer (another host's, or another app's on a shared ring): the units
    # newer than this one move one slot back, each to its older neighbour's slot, and the
    # newest slot, emptied, becomes the head, as on the fast path. O(newer units), read newest
    # first: rewriting the whole ring cost O(cap) (~0.5 s under the write lock at
    # MAX_QUOTA_LIMIT, per refund an app could cause).
    newer: list[SlotUnit] = []
    for slot, ts, op in _newest_first(conn, key, cap, head):
        if op != op_id:
            newer.append((slot, ts, op))
            continue
        # Oldest first: each unit takes the slot of the one before it, the first this one's.
        targets = [slot, *(s for s, _ts, _op in reversed(newer))][:-1]
        conn.executemany("UPDATE quota_slots SET ts=?, op=? WHERE key=? AND slot=?",
                         [(t, o, key, to) for (_s, t, o), to
                          in zip(reversed(newer), targets, strict=True)])
        conn.execute("DELETE FROM quota_slots WHERE key=? AND slot=?", (key, newest))
        conn.execute("UPDATE quota_keys SET head=?, used=NULL, tw=NULL WHERE key=?",
                     (newest, key))
        return True
    return False  # overwritten since: it had freed already, nothing to give back


# `_newest_first` reads a ring in chunks growing from the first to the last size: a refund
# reads about as many units as are newer than its own (usually few), in a few statements.
_WALK_FIRST, _WALK_LAST = 16, 4096


def _newest_first(conn: Conn, key: str, cap: int, head: int) -> Iterator[SlotUnit]:
    """A ring's units, newest first: (slot, ts, op). The newest is in the slot before `head`;
    going back from there the slots descend to 0, then from `cap - 1` down to `head`."""
    newest = (head + cap - 1) % cap
    size = _WALK_FIRST
    for lo, hi in ((0, newest), (head, cap - 1)) if head else ((0, newest),):
        while hi >= lo:
            rows = conn.execute(
                "SELECT slot, ts, op FROM quota_slots WHERE key=? AND slot BETWEEN ? AND ?"
                " ORDER BY slot DESC LIMIT ?", (key, lo, hi, size)).fetchall()
            for r in rows:
                yield int(r[0]), float(r[1]), r[2]
            if len(rows) < size:
                break
            hi = int(rows[-1][0]) - 1
            size = min(size * 4, _WALK_LAST)


def refund_in(conn: Conn, reservation: Reservation) -> bool:
    """Give back every unit of `reservation` that is still remembered. True if all were found."""
    # A seat needs no refund: it is counted from pending intents and the server's users, so it
    # frees when the intent is settled without a user behind it.
    ok = True
    for key in reservation.keys:
        ok = _refund_key(conn, key, reservation.op_id) and ok
    return ok


def drop_rings_in(conn: Conn, prefix: str, keys: Sequence[str] = ()) -> int:
    """Inside the caller's transaction: delete every ring whose key starts with `prefix`, and
    the rings `keys`, with their units; how many rings went. An uninstall's (the install's own
    rings, which nothing can charge again: a reinstall is a new install id); `quota_keys` may
    not exist yet (no call was ever charged on this store)."""
    if not table_exists(conn, "quota_keys"):
        return 0
    # substr, not LIKE: an install id's "_" is a LIKE wildcard; and one meaning on both backends.
    found = [str(r[0]) for r in conn.execute(
        "SELECT key FROM quota_keys WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))]
    found += [k for k in keys if k not in found]
    for key in found:
        conn.execute("DELETE FROM quota_slots WHERE key=?", (key,))
        conn.execute("DELETE FROM quota_keys WHERE key=?", (key,))
    return len(found)


# ---------------------------------------------------------------------------------------------


class QuotaStore:
    """Durable quotas over `host.db` (usable alone; the `Ledger` shares the same primitives)."""

    def __init__(self, db: Path | str | Store, clock: Clock, *, store_clock: bool = True) -> None:
        """`store_clock`: windows are timed by the store's clock where several machines share
        it, as the ledger's are (`Ledger`); False: by `clock` on every store."""
        self.store = db if isinstance(db, Store) else open_store(db)
        self.clock = clock
        self._store_clock = store_clock
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)

    def _now_in(self, c: Conn) -> float:
        at = self.store.clock_in(c) if self._store_clock else None
        return at if at is not None else self.clock.now()

    def reserve(self, charges: Sequence[QuotaCharge], op_id: str) -> Reservation | QuotaDenied:
        """Take one unit of every charge, all or none (seats: `Ledger.admit`)."""
        with self.store.transaction() as c:
            result, _ = reserve_in(c, charges, op_id, self._now_in(c))
        return result

    def refund(self, reservation: Reservation) -> bool:
        """Give the units back (the call applied nothing). False if some were no longer held."""
        with self.store.transaction() as c:
            return refund_in(c, reservation)

    def state(self, key: str, limit: int, window_s: float) -> QuotaState:
        """Used units in the window ending now, and when the next frees if none is free."""
        with self.store.transaction() as c:
            return state_in(c, key, limit, window_s, self._now_in(c))

    def close(self) -> None:
        self.store.close()
