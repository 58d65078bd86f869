"""The gate's install records, cached per process and refreshed when the store changed.

Every bridge call needs its install record (enabled, grants, generation, epoch); reading it
per call was a SELECT and a model validation each. The cache is checked, not trusted: a
change committed by any connection, of this process or another (the CLI), is seen by the next
call (`tests/spine/test_install_cache.py`).

Each record comes with the change counter it is current for. A call with an admission need not
probe before deciding: it decides on the cached record (`peek`) and its admission checks,
inside its own transaction, that the counter has not moved since (`Gate._admit_and_call`).
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from host.apps.installs import InstallRecord, InstallStore, data_version_in

# `_Seen.skip_probe`: after this many calls in a row found the change probe moved, a
# thread reads the install change counter directly for the next PROBE_RETRY calls.
PROBE_STREAK = 8
PROBE_RETRY = 64


class InstallView:
    """Install records cached per process, refreshed when another process changed the store."""

    def __init__(self, installs: InstallStore, probe: Callable[[], Any]) -> None:
        self._installs = installs
        # The connection that polls the change counter. The gate passes the ledger's: it is the
        # connection this thread just committed on, so its page cache is still valid, where the
        # install store's own connection would see the ledger's commit as a foreign change and
        # reload its cache on every call.
        self._probe = probe
        self._lock = threading.Lock()
        self._version = -1
        self._epoch = 0
        self._cache: dict[str, InstallRecord | None] = {}
        # Per thread: the probe connection's PRAGMA data_version when this thread last read the
        # change counter, and the invalidation generation it read it under (`_Seen`).
        self._local = threading.local()
        self._generation = 0

    def peek(self, install_id: str) -> tuple[InstallRecord | None, int, int] | None:
        """The cached record, the epoch and the change counter they are current for, with no
        statement; None if nothing is cached. Not known to be current: whoever decides on it
        checks the counter before acting (`version_in`) or calls `get`."""
        with self._lock:
            if self._version < 0 or install_id not in self._cache:
                return None
            return self._cache[install_id], self._epoch, self._version

    def get(self, install_id: str) -> tuple[InstallRecord | None, int, int]:
        """The record, the epoch and the change counter, current as of this call."""
        conn = self._probe()
        try:
            seen: _Seen = self._local.seen
        except AttributeError:
            seen = self._local.seen = _Seen()
        # PRAGMA data_version changes when any *other* connection committed to host.db since
        # this connection last asked; every install, consent, enable/disable, epoch or grant
        # change is such a commit (the install store has connections of its own). Unchanged,
        # the change counter is unchanged since this thread last read it, so the cache is
        # current: no SELECT. Changed (a foreign commit of any kind), the counter is read.
        # A PostgreSQL store has no such probe: the counter (one indexed row) is read per call,
        # so a change made by any host is seen by every host at its next call.
        pv = (int(conn.execute("PRAGMA data_version").fetchone()[0])
              if isinstance(conn, sqlite3.Connection) and not seen.skip_probe() else None)
        with self._lock:
            if (pv is None or seen.conn is not conn or seen.pv != pv
                    or seen.generation != self._generation):
                if pv is not None:
                    moved = seen.conn is conn and seen.pv != pv
                    seen.streak = seen.streak + 1 if moved else 0
                version = data_version_in(conn)
                if version != self._version:
                    self._cache.clear()
                    self._epoch = self._installs.epoch()
                    self._version = version
                seen.conn, seen.generation = conn, self._generation
                if pv is not None:
                    seen.pv = pv
            elif pv is not None:
                seen.streak = 0
            if install_id not in self._cache:
                self._cache[install_id] = self._installs.get(install_id)
            return self._cache[install_id], self._epoch, self._version

    @staticmethod
    def version_in(conn: Any) -> int:
        """The change counter as `conn` sees it (inside an admission: as it will commit)."""
        return data_version_in(conn)

    def invalidate(self) -> None:
        with self._lock:
            self._version = -1
            self._generation += 1


class _Seen:
    """One thread's view of the probe (`InstallView.get`): a slotted object, where reading a
    `threading.local`'s attributes one by one cost a call ~2 µs."""

    __slots__ = ("conn", "generation", "pv", "skipped", "streak")

    def __init__(self) -> None:
        self.conn: Any = None  # the probe connection `pv` was read on
        self.pv = -1  # its PRAGMA data_version then
        self.generation = -1  # `InstallView._generation` then
        self.streak = 0  # calls in a row that found the probe moved
        self.skipped: int | None = None  # calls since the probe was last skipped into

    def skip_probe(self) -> bool:
        """Whether this thread reads the change counter without asking the PRAGMA first.

        Under steady load another connection has committed before nearly every call (the
        ledger's commits on other threads), so the PRAGMA only adds a statement before the
        read it then needs anyway (~40 µs of a call's CPU under load, docs/BENCH.md). After
        `PROBE_STREAK` moved probes in a row the thread skips it, and tries it again after
        `PROBE_RETRY` calls to notice that the load has passed. Skipping never misses a change:
        a call that does not ask the PRAGMA reads the counter itself."""
        skipped = self.skipped
        if skipped is not None:
            if skipped + 1 >= PROBE_RETRY:
                self.skipped, self.streak = None, 0
                return False
            self.skipped = skipped + 1
            return True
        if self.streak >= PROBE_STREAK:
            self.skipped = 0
            return True
        return False
