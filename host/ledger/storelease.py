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
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from host.clock import Clock
from host.home import Home
from host.ledger.lease import HomeLease
from host.store import SchemaItem

log = logging.getLogger("stockade.lease")

SCHEMA_COMPONENT = "leases"
SCHEMA_VERSION = 1
DDL: tuple[SchemaItem, ...] = (
    "CREATE TABLE IF NOT EXISTS host_leases(host_id TEXT PRIMARY KEY, machine TEXT NOT NULL,"
    " pid INTEGER NOT NULL, since REAL NOT NULL, beat REAL NOT NULL)",
)

# How often a serving host looks for dead hosts to settle (s): bounds how long a dead host's
# reserved units stay reserved. Each sweep is one SELECT and a try-lock per other host.
SWEEP_INTERVAL_S = 5.0
# TCP keepalive on the lease connection: a host whose machine vanished without closing its
# socket loses its lease after about idle + interval * count seconds (here 10 + 5 * 3 = 25 s).
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
# The advisory-lock key space of leases (the store's write lock is another key).
_LEASE_NAMESPACE = 0x53544B4C  # "STKL"

# Settles one dead host's unfinished calls (None: the intents with no host); returns how many.
Settle = Callable[[str | None], int]


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

    def to_json(self) -> dict[str, object]:
        return {"host_id": self.host_id, "machine": self.machine, "pid": self.pid,
                "since": self.since, "beat": self.beat}


class StoreLease:
    """One host's lease on a shared store (see the module docstring)."""

    def __init__(self, url: str, host_id: str, clock: Clock) -> None:
        self.url = url
        self.host_id = host_id
        self.clock = clock
        self._conn: Any = None
        self._lock = threading.Lock()  # the lease connection is used by one thread at a time
        self.alone = False  # whether the last sweep found no other live host

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self, settle: Settle) -> int:
        """Take this host's lease, then settle every dead host's calls. Returns how many."""
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, keepalives=1,
                               keepalives_idle=KEEPALIVE_IDLE_S,
                               keepalives_interval=KEEPALIVE_INTERVAL_S,
                               keepalives_count=KEEPALIVE_COUNT)
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)",
                               (lease_key(self.host_id),)).fetchone()
            if not got or not got[0]:
                raise RuntimeError(f"host id {self.host_id} is already serving this store")
            now = float(self.clock.now())
            conn.execute(
                "INSERT INTO host_leases(host_id, machine, pid, since, beat)"
                " VALUES(%s, %s, %s, %s, %s) ON CONFLICT(host_id) DO UPDATE"
                " SET machine=excluded.machine, pid=excluded.pid, since=excluded.since,"
                " beat=excluded.beat", (self.host_id, socket.gethostname(), os.getpid(), now, now))
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self.sweep(settle)

    def sweep(self, settle: Settle) -> int:
        """Settle the calls of every host whose lease is gone; beat this host's own row."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return 0
            conn.execute("UPDATE host_leases SET beat=%s WHERE host_id=%s",
                         (float(self.clock.now()), self.host_id))
            others = [str(r[0]) for r in conn.execute(
                "SELECT host_id FROM host_leases WHERE host_id <> %s", (self.host_id,))]
            # Hosts that stopped (cleanly: their row is gone) leaving calls unfinished.
            gone = [str(r[0]) for r in conn.execute(
                "SELECT DISTINCT host_id FROM audit_intents WHERE host_id IS NOT NULL"
                " AND host_id <> %s AND host_id NOT IN (SELECT host_id FROM host_leases)",
                (self.host_id,))]
            settled, alive = 0, 0
            for other in [*others, *gone]:
                key = lease_key(other)
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if not got or not got[0]:
                    alive += 1
                    continue
                try:
                    n = settle(other)
                    conn.execute("DELETE FROM host_leases WHERE host_id=%s", (other,))
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                settled += n
                log.warning("host %s stopped serving without finishing; settled %d of its "
                            "calls", other, n)
            self.alone = alive == 0
            if self.alone:
                settled += settle(None)
            return settled

    def release(self) -> None:
        """Stop serving: remove this host's row and drop its lock (safe to call twice)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.execute("DELETE FROM host_leases WHERE host_id=%s", (self.host_id,))
            finally:
                conn.close()


def live_hosts(url: str) -> list[LeaseRow]:
    """The hosts whose rows say they serve this store (`doctor`, `store status`)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT host_id, machine, pid, since, beat FROM host_leases ORDER BY since").fetchall()
    return [LeaseRow(str(r[0]), str(r[1]), int(r[2]), float(r[3]), float(r[4])) for r in rows]


class HostLease:
    """The lease a running host holds, whichever store it uses: the home's `flock`
    (`host.ledger.lease`) or the shared store's (above). `settle(host_id, untagged)` settles
    unfinished calls: all of them for (None, False), one dead host's, or the untagged ones."""

    def __init__(self, home: Home, host_id: str, clock: Clock,
                 settle: Callable[[str | None, bool], int]) -> None:
        self._settle = settle
        self._home = HomeLease(home.lease_path) if home.store_url is None else None
        self._shared = (StoreLease(home.store_url, host_id, clock)
                        if home.store_url is not None else None)

    def acquire(self) -> bool:
        """Take the lease, settling what no live host owns. Returns whether no other host
        was serving (then every call left unfinished was settled)."""
        if self._shared is not None:
            self._shared.acquire(self._by_host)
            return self._shared.alone
        assert self._home is not None
        return self._home.acquire(self._all)

    def sweep(self) -> int:
        """Settle the calls of hosts that died since (a shared store only; 0 otherwise)."""
        return 0 if self._shared is None else self._shared.sweep(self._by_host)

    def release(self) -> None:
        if self._shared is not None:
            self._shared.release()
        if self._home is not None:
            self._home.release()

    def _all(self) -> None:
        self._settle(None, False)

    def _by_host(self, host_id: str | None) -> int:
        return self._settle(host_id, host_id is None)
