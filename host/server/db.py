"""The embedded server's SQLite store: one connection per thread, WAL, one transaction per
server operation, and a versioned schema.

Why these settings: WAL lets readers run while one writer commits; `synchronous=NORMAL` in WAL
mode keeps a commit durable against a process crash (the host's crash reconciliation relies on
`ops` rows, see `ops.py`) without an fsync per commit; `BEGIN IMMEDIATE` takes the write lock up
front so a write never fails half-way with SQLITE_BUSY on lock upgrade; `busy_timeout` makes the
several host threads and processes queue instead of failing.
"""
from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.server.migrations import (
    _ROLES_SEED,
    SCHEMA_VERSION,
    SERVER_VERSION_DDL,
    migration_statements,
)
from host.server.moved import refuse_if_moved
from host.store import SchemaTooNew, StoreError, immediate
from host.store.pg import SERVER_WRITE_LOCK, PgStore, is_url, redacted
from host.store.pool import ConnPool, register
from host.store.upgrades import refuse_if_served

# How long a writer waits for the lock before SQLITE_BUSY (several host threads share the file).
BUSY_TIMEOUT_MS = 5000
WAL_AUTOCHECKPOINT_PAGES = 20_000  # ~80 MiB of WAL before a write would checkpoint itself
# Prepared statements kept per connection: the hot paths use a few dozen fixed SQL strings.
STATEMENT_CACHE = 256

# Rocket.Chat-style ids: 17 characters of an alphabet without look-alikes (0/O, 1/l/I).
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_ID_LEN = 17
# Random bytes map to the alphabet by `bytes.translate` (a byte b < 220 to letter b % 55, 220
# being the largest multiple of 55 a byte can be; the rest are dropped, so every letter is
# equally likely): ~0.6 µs an id against ~2.2 for 17 big-integer divisions, on every creation.
_ID_KEEP = len(_ID_ALPHABET) * (256 // len(_ID_ALPHABET))
_ID_TABLE = bytes(ord(_ID_ALPHABET[b % len(_ID_ALPHABET)]) for b in range(256))
_ID_DROP = bytes(range(_ID_KEEP, 256))
# 32 bytes keep 17 or more but for about one draw in a million (then it draws again).
_ID_DRAW = 32


def new_id() -> str:
    """A random 17-character id (~98 bits; ids are names, not secrets, but must not collide)."""
    while True:
        kept = secrets.token_bytes(_ID_DRAW).translate(_ID_TABLE, _ID_DROP)
        if len(kept) >= _ID_LEN:
            return kept[:_ID_LEN].decode("ascii")


class _Conn(sqlite3.Connection):
    """A server connection `Database` can hold weakly (a plain `sqlite3.Connection` takes no
    weak reference)."""

    __slots__ = ("__weakref__",)


class Database:
    """Per-thread connections to one SQLite file (or, shared by several hosts, a PostgreSQL
    database: docs/SCALE.md), plus the transaction helpers.

    Each thread gets its own connection from `conn()`; a thread that is done with the server
    (a runner that stops) gives it back with `release()`, and the next thread takes it idle from
    the pool (`host.store.pool`: it moves between threads only outside a transaction).
    `close_all()` closes every connection it opened that is still open, any thread's.
    """

    def __init__(self, target: Path | str, *, migrating: bool = False) -> None:
        self._local = threading.local()
        self._pool = ConnPool()
        # Every connection opened here and still open, whichever thread holds it or idle, for
        # `close_all`. Held weakly, unlike `Store._opened`: the console's worker threads (anyio's)
        # end after a quiet while without `release`, and a connection such a thread dropped
        # closes as it is freed; held strongly it would stay open until `close_all`, one more for
        # each worker the console started, for the life of the process.
        self._opened: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        register(self)
        self.target = target  # what another connection opens (`host.store.reading`)
        #: The shared store, when the server's data is in PostgreSQL; None for a SQLite file.
        self.shared: PgStore | None = None
        if is_url(target):
            self.shared = PgStore(str(target), migrating=migrating,
                                  write_lock=SERVER_WRITE_LOCK)
            self.path = Path(redacted(str(target)))  # a name for messages and caches only
            self._migrate_shared(migrating)
            return
        self.path = Path(target)
        self._where = os.path.abspath(self.path)  # its write turn's key (`host.store.writeturn`)
        # A server.db of its own (an older home's) may be moved into host.db while this process
        # has it open: each write checks, under the write lock, that it is not (`moved.py`).
        self._may_move = self.path.name == "server.db"
        self._migrate()

    def conn(self) -> Any:
        """This thread's connection (opened on first use), or the one lent to it (`lend`)."""
        loan: Loan | None = getattr(self._local, "loan", None)
        if loan is not None:
            return loan.conn
        if self.shared is not None:
            return self.shared.conn()
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = self._pool.take() or self._open()
            self._local.conn = c
        return c

    def release(self) -> None:
        """This thread is done with the server: its connection goes to the pool (or closes)."""
        if self.shared is not None:
            self.shared.release()
            return
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None and not self._pool.give(c):
            c.close()

    def fence(self, host_id: str) -> None:
        """On a shared store, refuse every later write once `host_id`'s lease is gone
        (`PgStore.fence`); a SQLite file needs no fence."""
        if self.shared is not None:
            self.shared.fence(host_id)

    def warm(self, count: int) -> int:
        """Open connections ahead of need until `count` are idle (see `host.store.pool`)."""
        if self.shared is not None:
            return self.shared.warm(count)
        return self._pool.fill(count, self._open)

    def close_idle(self) -> None:
        """Close the pooled connections (their owner stops; threads keep their own)."""
        if self.shared is not None:
            self.shared.close_idle()
            return
        for idle in self._pool.drain():
            idle.close()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file off the call path (PASSIVE: never blocks)."""
        if self.shared is None:
            self.conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _open(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        # isolation_level=None: no implicit transactions; every write is an explicit BEGIN.
        # check_same_thread=False: an idle connection moves to the next thread through the
        # pool; it is only ever used by one thread at a time.
        c = sqlite3.connect(
            self.path, isolation_level=None, cached_statements=STATEMENT_CACHE, timeout=0,
            check_same_thread=False, factory=_Conn,
        )
        if fresh:
            os.chmod(self.path, 0o600)  # holds token hashes and user data
        c.row_factory = sqlite3.Row
        c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Deleted rows zeroed (a revoked token's hash, a changed password's): as the host
        # store (`host.store.sqlite`), whatever the SQLite build's default.
        c.execute("PRAGMA secure_delete=ON")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA foreign_keys=ON")
        # Automatic checkpoints would run inside a write's COMMIT and stall it for milliseconds;
        # the host checkpoints from its upkeep thread instead (`Database.checkpoint`). The cap
        # bounds the WAL if nobody does (a CLI-only process).
        c.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        c.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the schema, read now
        with self._opened_lock:
            self._opened.add(c)
        return c

    def close(self) -> None:
        """Close this thread's connection and the idle ones (other threads' close when their
        thread ends, or at `close_all`)."""
        if self.shared is not None:
            self.shared.close()
            return
        self.close_idle()
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def close_all(self) -> None:
        """Close every connection this database opened, idle ones and those of threads still
        alive included (its owner stops, after the threads that use it: DESIGN rule 13; a live
        thread's would otherwise stay open after its owner stopped). As `Store.close_all`."""
        if self.shared is not None:
            self.shared.close_all()
            return
        self._pool.drain()
        with self._opened_lock:
            opened, self._opened = list(self._opened), weakref.WeakSet()
        for c in opened:
            with suppress(sqlite3.Error):
                c.close()
        self._local = threading.local()

    def commits_here(self) -> int:
        """Write transactions this thread has committed so far (or may have: a shared store's
        failed COMMIT). A caller that runs several writes (a REST handler) compares it before
        and after a failure to know whether "nothing was written" holds."""
        return int(getattr(self._local, "commits", 0))

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One write transaction (BEGIN IMMEDIATE .. COMMIT, or the shared store's write lock);
        any exception rolls it all back."""
        if getattr(self._local, "loan", None) is not None:
            # Inside the lender's transaction (`lend`): it commits, or rolls back, all of it.
            yield self.conn()
            return
        c = self.conn()
        if c.in_transaction:
            # A server operation is one transaction; nesting would silently merge two.
            raise RuntimeError("nested server write on one thread")
        # The shared store's transaction yields the connection it began on: a fresh one when
        # this thread's was found broken at its BEGIN (`host.store.pg`), never `c`.
        unsure = False
        try:
            with (immediate(c, self._where, BUSY_TIMEOUT_MS) if self.shared is None
                  else self.shared.transaction()) as began:
                if self.shared is None and self._may_move:
                    refuse_if_moved(c, self.path)
                yield began
                # What fails from here is the COMMIT: SQLite's applied nothing, a shared store's
                # may have (its session ended before the answer): counted (`commits_here`).
                unsure = self.shared is not None
        except BaseException:
            if unsure:
                self._local.commits = self.commits_here() + 1
            raise
        self._local.commits = self.commits_here() + 1

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A consistent snapshot for a multi-statement read (deferred transaction)."""
        c = self.conn()
        if c.in_transaction:
            yield c
            return
        # PostgreSQL's default isolation takes a snapshot per statement; one per transaction
        # is what SQLite's deferred BEGIN gives.
        c.execute("BEGIN" if self.shared is None else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            yield c
        finally:
            if c.in_transaction:
                c.execute("COMMIT")

    @contextmanager
    def lend(self, c: sqlite3.Connection) -> Iterator[Loan]:
        """Run this thread's server operations on `c`, inside its owner's open write transaction
        on the same file (DESIGN rule 9's second branch: the gate's decision, quota unit, server
        write and outcome commit together; `host.gate.onetx`). Writes neither begin nor commit
        (the owner does both); their events wait in the `Loan` until the owner has committed,
        and are dropped if it rolls back. Rows read by name meanwhile (`sqlite3.Row`), as on
        this database's own connections; the owner's row factory is put back after."""
        if self.shared is not None or not c.in_transaction:
            raise RuntimeError("a server connection is lent only inside a SQLite transaction")
        if getattr(self._local, "loan", None) is not None:
            raise RuntimeError("nested loan of a connection to the server")
        loan = Loan(c)
        factory = c.row_factory
        c.row_factory = sqlite3.Row
        self._local.loan = loan
        try:
            yield loan
        finally:
            self._local.loan = None
            c.row_factory = factory

    def loan(self) -> Loan | None:
        """The loan this thread's server operations run under (`lend`), if any."""
        loan: Loan | None = getattr(self._local, "loan", None)
        return loan

    def _migrate_shared(self, migrating: bool) -> None:
        """A shared store's schema changes only at `stockade store migrate` (docs/SCALE.md)."""
        assert self.shared is not None
        version = 0
        if self.shared.has_table("schema_version"):
            row = self.conn().execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            version = int(row[0]) if row else 0
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"{self.path}: the server schema is at version {version}, "
                               f"newer than this Stockade ({SCHEMA_VERSION}); upgrade Stockade")
        if not migrating:
            raise StoreError(f"{self.path}: the server schema is at version {version}, this "
                             f"Stockade needs {SCHEMA_VERSION}; run `stockade store migrate`")
        self._migrate()

    def _migrate(self) -> None:
        dialect = "sqlite" if self.shared is None else "postgresql"
        with self.write() as c:
            c.execute(SERVER_VERSION_DDL)
            row = c.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.path} has schema version {version}, newer than this host "
                    f"({SCHEMA_VERSION}); upgrade Stockade"
                )
            if self.shared is None and 0 < version < SCHEMA_VERSION:
                # Not under a host serving the older layout (`host.store.upgrades`).
                refuse_if_served(self.path, f"server {version} to {SCHEMA_VERSION}")
            for i in range(version, SCHEMA_VERSION):
                for stmt in migration_statements(i, dialect):
                    c.execute(stmt)
                if i == 0:
                    c.executemany(
                        "INSERT INTO roles (name, privileged, description) VALUES (?, ?, ?)",
                        _ROLES_SEED,
                    )
            c.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )


@dataclass
class Loan:
    """A connection lent to the server by its owner's transaction (`Database.lend`), and the
    events the server's writes on it queued, for the owner to emit once it has committed."""

    conn: sqlite3.Connection
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Tx:
    """One server operation in flight: its connection (inside BEGIN IMMEDIATE), its timestamp,
    and the events it will emit once COMMIT succeeds."""

    conn: sqlite3.Connection
    now: float
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        """Queue an event for after commit."""
        self.events.append((name, dict(payload)))
