"""Which hosts serve a shared PostgreSQL store, and who settles a dead host's unfinished calls.

The SQLite home's lease is a `flock` on a file (`host.ledger.lease`): it only works for hosts on
one machine, and it settles a crashed host's calls only when the next host starts alone. Hosts
sharing a PostgreSQL store keep the same promise with a lease in the database:

- each host holds a session-level advisory lock keyed by its host id, on a connection of its
  own, for as long as it serves, and a row in `host_leases` (machine, pid, since, heartbeat)
  that says who it is. PostgreSQL drops a session's locks when the session ends — the host
  exited, was SIGKILLed, or its machine vanished (TCP keepalives on the lease connection bound
  how long that takes to notice: `KEEPALIVE_*`);
- every host, at start and then every `SWEEP_INTERVAL_S`, looks at the other rows: a host
  whose lock it can take is dead. Holding that lock, the survivor settles the dead host's calls
  (each intent is tagged with the host that admitted it), deletes its row and lets go. Two
  survivors never settle the same host at once (the lock is exclusive), and a live host's
  calls in flight are never touched (its lock cannot be taken);
- a host that stops cleanly deletes its own row, yet may leave intents (an outcome that could
  not be written when a store error struck); it has no call in flight, so the sweep also visits
  every host named on an intent that has no row, under that host's lock as for a dead one;
- intents with no host (made before the store's audit schema version 2) are settled only when
  no other host is alive, as the single-machine lease does.

A lock that can be taken proves only that the session holding it ended, not that the host did:
a fault may end the lease connection alone (`pg_terminate_backend`, `idle_session_timeout`, a
proxy, a backend restart) while the host keeps serving through its other connections. Settling
its calls then would refund units of writes it is about to apply (rule 8). So:

- each sweep beats the host's row with the database server's clock (`beat_db`: no machine's
  clock skew matters) and the row says how long the host may go without beating (`grace_s`,
  `GRACE_SWEEPS` of its sweep interval). A survivor settles a host whose lock it can take only
  once that beat is older than its grace, checked again while holding the lock (a host beats
  only while holding its own lock, so the answer cannot change under the survivor);
- a host whose sweep finds its lease connection broken reconnects and re-takes its own lock at
  once, beating only if its last beat is still within its grace (past it a survivor may have
  settled its calls); while the store cannot be reached at all (a restart, a failover) it tries
  again at each sweep for as long as its beat is within the grace, admitting nothing new past
  `admit_until` meanwhile. If it cannot, the lease is lost: `held` turns False, `lost` says why, the
  sweep raises `LeaseLost` and the host stops admitting calls (`HostLease`'s `on_lost`) rather
  than serve unleased. A restart takes a new lease under a new host id.

Neither a lock nor a beat stops a host that is merely stopped (SIGSTOP, a long GC pause, a VM
freeze whose lease session TCP keepalives ended) from going on, once it resumes, with the write
it was in the middle of, after a survivor has settled that very call (a create marked
`not_applied`, its unit refunded: a quota of one then admits two). So the lease row is also a
fencing token. A serving host's stores check, inside every write transaction and under its
write lock, that its row is still there (`PgStore.fence`; host ids are never reused, so the
row's presence is the lease's generation). A survivor, holding the host's lock and having found
its beat past its grace, deletes the row first, then takes and lets go of both write locks
(`_fence`): a write the host had under way commits before the survivor asks what was applied,
and any later one is refused. A host whose sweep finds its row gone has lost its lease.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from host.clock import Clock
from host.home import Home
from host.ledger.lease import HomeLease
from host.store import SchemaItem, Step
from host.store.pg import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE_S,
    KEEPALIVE_INTERVAL_S,
    KEEPALIVE_SQL,
    LOCK_TIMEOUT_MS,
    SERVER_WRITE_LOCK,
    WRITE_LOCK,
)

log = logging.getLogger("stockade.lease")

# The lease connection while it is broken and the store cannot be reached (see `_beat`).
_UNREACHABLE: Any = object()

SCHEMA_COMPONENT = "leases"
SCHEMA_VERSION = 2
DDL: tuple[SchemaItem, ...] = (
    "CREATE TABLE IF NOT EXISTS host_leases(host_id TEXT PRIMARY KEY, machine TEXT NOT NULL,"
    " pid INTEGER NOT NULL, since REAL NOT NULL, beat REAL NOT NULL)",
    # Version 2: the last beat by the database server's clock, and how long after it a host
    # whose lock can be taken may still be alive (see the module docstring). A row without
    # them (a host of an older release) is settled as soon as its lock can be taken, as before.
    Step(2, "ALTER TABLE host_leases ADD COLUMN beat_db DOUBLE PRECISION"),
    Step(2, "ALTER TABLE host_leases ADD COLUMN grace_s DOUBLE PRECISION"),
)

# How often a serving host looks for dead hosts to settle (s): bounds how long a dead host's
# reserved units stay reserved. Each sweep is one SELECT and a try-lock per other host.
SWEEP_INTERVAL_S = 5.0
# TCP keepalive on the lease connection, on both ends (`host.store.pg.KEEPALIVE_*`): a host
# whose machine vanished without closing its socket loses its lease after about idle + interval
# * count seconds (10 + 5 * 3 = 25 s), and a host loses a store that vanished as soon.
# Guards a live host's calls in flight against settlement by another host after its lease
# connection alone died: a host whose lock can be taken is settled only when its last beat is
# older than this many of its sweep intervals. It must cover the host noticing the loss (one
# sweep) and re-taking its lock, or failing closed, plus a call admitted just before that
# finishing its server write; it also delays the settling of a host that truly died.
GRACE_SWEEPS = 4
# Of that grace, how many sweep intervals a host may admit calls after its last beat (measured
# from before the beat was sent, so never later than the beat the database recorded): the
# rest (GRACE_SWEEPS - ADMIT_SWEEPS) is left for a call admitted at the last moment to finish
# its server write before any survivor may settle it. Bounds a host whose upkeep is stuck (an
# unreachable lease connection) without waiting for a sweep to notice.
ADMIT_SWEEPS = 2
# A reconnect of the lease connection gives up after this long (s), so a sweep cannot hang.
CONNECT_TIMEOUT_S = 5
# A survivor's sweep holds a dead-session host's lock for a moment while it checks that host's
# beat; a host re-taking its own lock at that moment tries again this many times, this far
# apart, before it counts the lease as lost (losing it only makes the host refuse calls).
RETAKE_TRIES = 3
RETAKE_PAUSE_S = 0.05
# The advisory-lock key space of leases (the store's write lock is another key).
_LEASE_NAMESPACE = 0x53544B4C  # "STKL"

# How long one sweep may spend settling dead hosts' calls (s) before it leaves the rest for the
# next sweep: guards this host's own lease. The sweep runs on the upkeep thread that beats it, and
# this host stops admitting ADMIT_SWEEPS intervals after its last beat (and cannot re-take its
# lease past GRACE_SWEEPS). Settling asks the server about each call: against a Rocket.Chat
# workspace a read-back can take seconds, and a dead host's backlog of them held the beat past
# the grace, so one dead host took every survivor's lease down with it. A read-back under way
# finishes: a sweep settles for at most this plus one read-back.
SETTLE_BUDGET_S = SWEEP_INTERVAL_S / 2

# Settles one dead host's unfinished calls (None: the intents with no host), asking about none
# after the deadline (`time.monotonic()`); returns how many.
Settle = Callable[[str | None, float], int]

# After a survivor deletes a host's lease row (the fencing token: see the module docstring), it
# waits out every write transaction in flight on the store by taking and letting go of each
# write lock in turn (never both at once: no order to deadlock on). A write holding one
# commits before the survivor reads what was applied; one taking it later sees the row gone.
_FENCE_BARRIER = "; ".join(
    f"BEGIN; SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)};"
    f" SELECT pg_advisory_xact_lock({int(key)}); COMMIT"
    for key in (WRITE_LOCK, SERVER_WRITE_LOCK))


class Fenceable(Protocol):
    """A store whose write transactions can be fenced by a lease (`Store`, the embedded
    server's `Database`)."""

    def fence(self, host_id: str) -> None: ...


def lease_key(host_id: str) -> int:
    """The advisory-lock key of `host_id`'s lease (a signed 64-bit number)."""
    digest = hashlib.sha256(f"{_LEASE_NAMESPACE}:{host_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class LeaseRow:
    host_id: str
    machine: str
    pid: int
    since: float
    beat: float
    # Its last beat is older than its grace by the database's clock (or it is a row of an
    # older release, without one): a survivor settles its calls once its lock can be taken.
    past_grace: bool = False
    # Its clock's lead over the database's at its last beat (s; None for an older release's
    # row): `beat` is by the host's clock, `beat_db` by the database's, in one statement.
    clock_lead: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"host_id": self.host_id, "machine": self.machine, "pid": self.pid,
                "since": self.since, "beat": self.beat, "past_grace": self.past_grace,
                "clock_lead": self.clock_lead}


class LeaseLost(RuntimeError):
    """This host's lease connection died and its lock could not be re-taken in time: another
    host may settle its calls, so it must admit no more (see the module docstring)."""


class StoreLease:
    """One host's lease on a shared store (see the module docstring). `sweep_interval_s` is how
    often its owner calls `sweep` (at most): its grace is `GRACE_SWEEPS` of it."""

    def __init__(self, url: str, host_id: str, clock: Clock,
                 sweep_interval_s: float = SWEEP_INTERVAL_S) -> None:
        if not sweep_interval_s > 0:
            raise ValueError("the sweep interval must be positive")
        self.url = url
        self.host_id = host_id
        self.clock = clock
        self.grace_s = GRACE_SWEEPS * sweep_interval_s
        self.admit_s = ADMIT_SWEEPS * sweep_interval_s
        # `time.monotonic()` before the last beat the database accepted (0: none yet).
        self.beaten_at = 0.0
        self._conn: Any = None  # or _UNREACHABLE: broken, the store not reachable yet
        self._broken: BaseException | None = None  # why, while _UNREACHABLE
        self._lock = threading.Lock()  # the lease connection is used by one thread at a time
        self.alone = False  # whether the last sweep found no other live host
        self.lost: str | None = None  # why the lease was lost while serving

    @property
    def held(self) -> bool:
        return self._conn is not None

    @property
    def admit_until(self) -> float:
        """The `time.monotonic()` after which this host must admit no call unless it beats
        again (see `ADMIT_SWEEPS`)."""
        return self.beaten_at + self.admit_s

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, keepalives=1,
                               keepalives_idle=KEEPALIVE_IDLE_S,
                               keepalives_interval=KEEPALIVE_INTERVAL_S,
                               keepalives_count=KEEPALIVE_COUNT,
                               connect_timeout=CONNECT_TIMEOUT_S)
        try:
            # The server's end too: libpq's keepalives above only let this host notice a dead
            # server; these let the server end this session, and the lease lock, when this
            # host's machine vanished (see `host.store.pg.KEEPALIVE_SQL`).
            conn.execute(KEEPALIVE_SQL)
        except BaseException:
            conn.close()
            raise
        return conn

    def acquire(self, settle: Settle, fenced: Sequence[Fenceable] = ()) -> int:
        """Take this host's lease, fence `fenced` with it (the stores through which this host
        acts on a call: its write transactions then fail once a survivor has taken the lease
        away), then settle every dead host's calls. Returns how many."""
        conn = self._connect()
        try:
            if not _try_lock(conn, self.host_id):
                raise RuntimeError(f"host id {self.host_id} is already serving this store")
            now, sent = float(self.clock.now()), time.monotonic()
            conn.execute(
                "INSERT INTO host_leases(host_id, machine, pid, since, beat, beat_db, grace_s)"
                " VALUES(%s, %s, %s, %s, %s, extract(epoch from clock_timestamp()), %s)"
                " ON CONFLICT(host_id) DO UPDATE"
                " SET machine=excluded.machine, pid=excluded.pid, since=excluded.since,"
                " beat=excluded.beat, beat_db=excluded.beat_db, grace_s=excluded.grace_s",
                (self.host_id, socket.gethostname(), os.getpid(), now, now, self.grace_s))
        except BaseException:
            conn.close()
            raise
        self.beaten_at = sent
        self._conn = conn
        for store in fenced:
            store.fence(self.host_id)
        return self.sweep(settle)

    def sweep(self, settle: Settle) -> int:
        """Settle the calls of every host whose lease is gone; beat this host's own row.
        Raises `LeaseLost` (once; `held` is then False) if this host's own lease is gone."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return 0
            conn = self._beat(conn)
            if conn is None:
                return 0  # the store unreachable for now: the next sweep tries again
            others = [str(r[0]) for r in conn.execute(
                "SELECT host_id FROM host_leases WHERE host_id <> %s", (self.host_id,))]
            # Hosts that stopped (cleanly: their row is gone) leaving calls unfinished.
            gone = [str(r[0]) for r in conn.execute(
                "SELECT DISTINCT host_id FROM audit_intents WHERE host_id IS NOT NULL"
                " AND host_id <> %s AND host_id NOT IN (SELECT host_id FROM host_leases)",
                (self.host_id,))]
            settled, alive = 0, 0
            until = time.monotonic() + SETTLE_BUDGET_S
            for other in [*others, *gone]:
                if not _try_lock(conn, other):
                    alive += 1
                    continue
                try:
                    # Checked under the lock: a host beats only while holding it.
                    if _beat_fresh(conn, other):
                        alive += 1  # its lease connection died; it may be re-taking it
                        continue
                    _fence(conn, other)  # before anything is read or settled
                    n = settle(other, until)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lease_key(other),))
                settled += n
                log.warning("host %s stopped serving without finishing; settled %d of its "
                            "calls", other, n)
            self.alone = alive == 0
            if self.alone:
                settled += settle(None, until)
            return settled

    def _beat(self, conn: Any) -> Any:
        """Beat this host's row; if the lease connection is broken, re-take the lease on a new
        one or give it up (`LeaseLost`). Returns the connection to go on with, or None while
        the store cannot be reached and this host's beat is still within its grace (the next
        sweep tries again; admissions stop at `admit_until` meanwhile)."""
        import psycopg

        if conn is _UNREACHABLE:
            first: BaseException = self._broken or LeaseLost("the lease connection broke")
        else:
            try:
                sent = time.monotonic()
                # beat_db is by the database server's clock: beats are compared on one clock.
                beat = conn.execute("UPDATE host_leases SET beat=%s,"
                                    " beat_db=extract(epoch from clock_timestamp())"
                                    " WHERE host_id=%s",
                                    (float(self.clock.now()), self.host_id))
            except psycopg.Error as exc:
                if not (conn.closed or conn.broken):
                    raise  # a statement failed on a live session: the lock is still held
                first = exc
            else:
                if beat.rowcount == 1:
                    self.beaten_at = sent
                    return conn
                # The row is gone: a survivor took this host's lease away (`_fence`) and
                # settled its calls, or someone deleted it. Every write of this host is refused
                # already; it stops admitting too, and `serve` exits.
                with contextlib.suppress(Exception):
                    conn.close()
                self._conn = None
                self.lost = (f"host {self.host_id} lost its lease on the shared store (its "
                             "lease row is gone): another host may have settled its calls")
                raise LeaseLost(self.lost)
            with contextlib.suppress(Exception):
                conn.close()
        try:
            fresh = None
            for attempt in range(RETAKE_TRIES):
                fresh = self._retake()
                if fresh is not None:
                    break
                if attempt + 1 < RETAKE_TRIES:
                    time.sleep(RETAKE_PAUSE_S)
        except (psycopg.Error, OSError) as exc:
            fresh, why = None, f"could not reconnect: {exc}"
            if time.monotonic() - self.beaten_at < self.grace_s:
                # Unreachable, not refused: a restart or failover of the store. Within the
                # grace no survivor may settle this host, and the re-take's own condition says
                # whether it still may go on; until then it admits nothing new past
                # `admit_until`. (Before, one failed reconnect lost the lease: a 3 s restart
                # of PostgreSQL stopped every host for good.)
                if conn is not _UNREACHABLE:
                    log.warning("host %s: its lease connection broke (%s) and the store cannot "
                                "be reached (%s); trying again at the next sweep",
                                self.host_id, first, exc)
                self._conn, self._broken = _UNREACHABLE, first
                return None
        else:
            why = "its lock was taken or its beat was past its grace"
        if fresh is not None:
            log.warning("host %s: its lease connection broke (%s); lease re-taken", self.host_id,
                        first)
            self._conn, self._broken = fresh, None
            return fresh
        self._conn = None
        self.lost = (f"host {self.host_id} lost its lease on the shared store (the lease "
                     f"connection broke: {first}; {why}): another host may settle its calls")
        raise LeaseLost(self.lost)

    def _retake(self) -> Any:
        """A new lease connection holding this host's lock, its row beaten; None if the lock is
        held elsewhere or the last beat is past the grace (a survivor may have settled)."""
        conn = self._connect()
        try:
            if _try_lock(conn, self.host_id):
                sent = time.monotonic()
                row = conn.execute(
                    "UPDATE host_leases SET beat=%s, beat_db=extract(epoch from clock_timestamp())"
                    " WHERE host_id=%s"
                    " AND beat_db >= extract(epoch from clock_timestamp()) - grace_s RETURNING 1",
                    (float(self.clock.now()), self.host_id)).fetchone()
                if row is not None:
                    self.beaten_at = sent
                    return conn
        except BaseException:
            conn.close()
            raise
        conn.close()  # drops the lock too, if taken
        return None

    def release(self) -> None:
        """Stop serving: remove this host's row and drop its lock (safe to call twice)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None or conn is _UNREACHABLE:
                return  # (an unreachable store's session, and its lock, are gone already)
            import psycopg

            try:
                conn.execute("DELETE FROM host_leases WHERE host_id=%s", (self.host_id,))
            except psycopg.Error:
                if not (conn.closed or conn.broken):
                    raise
                # The lease session ended before any sweep noticed (its lock is gone with it):
                # the row stays, and a survivor settles whatever is left once it is past its
                # grace. (Before, the stop raised here, last, after everything else had closed.)
            finally:
                conn.close()


def _try_lock(conn: Any, host_id: str) -> bool:
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (lease_key(host_id),)).fetchone()
    return bool(got and got[0])


def _fence(conn: Any, host_id: str) -> None:
    """Take `host_id`'s lease away before settling its calls (module docstring): delete its row
    (its fencing token), then wait out every write transaction in flight. On the survivor's
    lease connection, holding `host_id`'s lock. If the wait fails, the row stays deleted and
    nothing is settled: the next sweep visits the host again (its intents name it)."""
    conn.execute("DELETE FROM host_leases WHERE host_id=%s", (host_id,))
    try:
        conn.execute(_FENCE_BARRIER)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise


def _beat_fresh(conn: Any, host_id: str) -> bool:
    """Whether `host_id`'s last beat is within its grace (a row of an older release, without
    one, is not: it is settled as soon as its lock can be taken, as that release did)."""
    row = conn.execute(
        "SELECT 1 FROM host_leases WHERE host_id=%s"
        " AND beat_db >= extract(epoch from clock_timestamp()) - grace_s",
        (host_id,)).fetchone()
    return row is not None


def live_hosts(url: str) -> list[LeaseRow]:
    """The hosts whose rows say they serve this store (`doctor`, `store status`)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT host_id, machine, pid, since, beat, beat_db IS NULL OR grace_s IS NULL"
            " OR beat_db < extract(epoch from clock_timestamp()) - grace_s, beat - beat_db"
            " FROM host_leases ORDER BY since").fetchall()
    return [LeaseRow(str(r[0]), str(r[1]), int(r[2]), float(r[3]), float(r[4]), bool(r[5]),
                     None if r[6] is None else float(r[6])) for r in rows]


class HostLease:
    """The lease a running host holds, whichever store it uses: the home's `flock`
    (`host.ledger.lease`) or the shared store's (above). `settle(host_id, untagged)` settles
    unfinished calls: all of them for (None, False), one dead host's, or the untagged ones,
    asking about none after `until` (None: no deadline)."""

    def __init__(self, home: Home, host_id: str, clock: Clock,
                 settle: Callable[[str | None, bool, float | None], int], *,
                 sweep_interval_s: float = SWEEP_INTERVAL_S,
                 on_lost: Callable[[str], None] | None = None,
                 on_beat: Callable[[float], None] | None = None,
                 fenced: Sequence[Fenceable] = ()) -> None:
        """`on_lost(why)`: the shared lease was lost while serving; the host must admit no
        more calls (see the module docstring). `on_beat(until)`: the shared lease was beaten;
        the host may admit calls until `until` (`time.monotonic()`) unless it beats again.
        `fenced`: the stores through which the host acts on a call (ledger, server, app
        data): on a shared store their writes are refused once the lease is taken away."""
        self._settle = settle
        self._fenced = fenced
        self._on_lost = on_lost
        self._on_beat = on_beat
        self._home = HomeLease(home.lease_path) if home.store_url is None else None
        self._shared = (StoreLease(home.store_url, host_id, clock, sweep_interval_s)
                        if home.store_url is not None else None)

    def acquire(self) -> bool:
        """Take the lease, settling what no live host owns. Returns whether no other host
        was serving (then every call left unfinished was settled)."""
        if self._shared is not None:
            try:
                self._shared.acquire(self._by_host, self._fenced)
            finally:
                self._beaten()
            return self._shared.alone
        assert self._home is not None
        return self._home.acquire(self._all)

    def sweep(self) -> int:
        """Settle the calls of hosts that died since (a shared store only; 0 otherwise)."""
        if self._shared is None:
            return 0
        try:
            return self._shared.sweep(self._by_host)
        except LeaseLost as exc:
            log.error("%s; this host admits no more calls (restart it to serve again)", exc)
            if self._on_lost is not None:
                self._on_lost(str(exc))
            return 0
        finally:
            self._beaten()  # a beat that succeeded counts even if a settlement then failed

    def _beaten(self) -> None:
        if self._on_beat is not None and self._shared is not None and self._shared.held:
            self._on_beat(self._shared.admit_until)

    def release(self) -> None:
        if self._shared is not None:
            self._shared.release()
        if self._home is not None:
            self._home.release()

    def _all(self) -> None:
        self._settle(None, False, None)

    def _by_host(self, host_id: str | None, until: float) -> int:
        return self._settle(host_id, host_id is None, until)
