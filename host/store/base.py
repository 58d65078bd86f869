"""What every store backend offers the host: a per-thread connection, one kind of write
transaction, and the SQL the two engines share.

The host's modules write their SQL once, in the subset SQLite and PostgreSQL agree on, with `?`
placeholders (`?N` where a value is used twice); the PostgreSQL backend translates the few
spellings that differ (`host.store.dialect`). What cannot be written portably is declared, not
spelled: `AppendOnly(table, message)` in a schema becomes SQLite triggers or a PL/pgSQL trigger.

Both backends give the same guarantee for a write transaction: it holds the store's one write
lock from its first statement (`BEGIN IMMEDIATE` in SQLite, an advisory transaction lock in
PostgreSQL), so no two writers, in any process on any machine, both read "one unit left".
"""
from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from host.errors import StartRefused
from host.store.pid import current_pid
from host.store.pool import ConnPool, register


class StoreError(RuntimeError):
    """The store cannot be used (newer schema, unreadable file, unreachable server, ...)."""


class SchemaTooNew(StoreError):
    """The store was written by a newer Stockade: this release refuses it (old code over a
    newer layout could skip a column that enforces a limit). The operator's to resolve, by
    running that release: every command says so in one line, never as a bug to report."""


class SchemaInUse(StartRefused, StoreError):
    """A SQLite home's schema would be upgraded while another process serves it (holds its
    `host.lock`): that host, which opened the store at the older layout, would go on writing
    rows without the columns and triggers the new one adds. Refused before any change, in one
    line naming the process (`host.store.upgrades`); a `StartRefused`, so every command and
    `serve` say it with its hint, never as a bug to report."""


# What the operator is told to do about a `SchemaTooNew` store, by every command.
SCHEMA_TOO_NEW_HINT = ("it was written by a newer Stockade release: run that release (or a "
                       "newer one) on it; this one neither reads nor changes a newer layout")


class Conn(Protocol):
    """The part of a connection the host's SQL runs on (sqlite3.Connection fits it)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...


@dataclass(frozen=True)
class AppendOnly:
    """Schema item: `table` refuses UPDATE and DELETE with `message` (an engine-side guard
    against a bug in host code; the audit chain and its anchor guard against everyone else)."""

    table: str
    message: str


@dataclass(frozen=True)
class SetOnce:
    """Schema item: once `column` of a `table` row holds a value, no UPDATE may touch it
    (trigger `name`; e.g. a revoked token stays revoked)."""

    name: str
    table: str
    column: str
    message: str


@dataclass(frozen=True)
class Step:
    """Schema item: a change applied once, when a store moves from below `version` to it (a
    column added to an existing table; the portable DDL before it creates the older layout)."""

    version: int
    statement: str


# One schema item: a portable DDL statement, or a declaration each backend spells itself.
SchemaItem = str | AppendOnly | SetOnce | Step


class Store(ABC):
    """One store backend (SQLite file or PostgreSQL database); see the module docstring."""

    #: "sqlite" or "postgresql": the few places that must differ ask this, nothing else.
    dialect: str
    readonly: bool
    #: This host's own folder beside the store (its audit anchor and key); None if unknown.
    local_dir: Path | None

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the store is, for messages (a path, or a URL without its password)."""

    @abstractmethod
    def conn(self) -> Any:
        """This thread's connection (a `Conn`): on first use an idle one from the pool
        (`host.store.pool`), else a new one."""

    @abstractmethod
    def _fresh(self) -> Any:
        """A newly opened, tuned connection (not yet any thread's)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """One write transaction holding the store's write lock from its first statement."""

    def __init__(self) -> None:
        self._local = threading.local()  # this thread's connection
        self._opened: set[Any] = set()  # every open one, any thread's or idle, for close_all
        self._opened_lock = threading.Lock()
        self._pool = ConnPool()
        register(self)

    def _adopt(self) -> Any:
        """This thread's connection after a miss in `conn()`: an idle one, else a new one."""
        c = self._pool.take()
        while c is not None and not self._usable(c):
            self._discard(c)
            c = self._pool.take()
        if c is None:
            c = self._fresh()
            with self._opened_lock:
                self._opened.add(c)
        return self._as_threads(c)

    def _as_threads(self, c: Any) -> Any:
        """`c` becomes the calling thread's connection (opened by this process)."""
        local = self._local
        local.conn = c
        local.pid = current_pid()
        return c

    def _usable(self, conn: Any) -> bool:
        """Whether a pooled connection can still serve (a server may have closed it)."""
        return True

    def _discard(self, conn: Any) -> None:
        with self._opened_lock:
            self._opened.discard(conn)
        with suppress(*DB_ERRORS):
            conn.close()

    def release(self) -> None:
        """This thread is done with the store (a runner that stops): its connection goes to
        the pool for the next thread, or is closed if it is mid-transaction or the pool full."""
        local = self._local
        c = getattr(local, "conn", None)
        local.conn = None
        if c is None or local.pid != current_pid():
            return
        if not self._pool.give(c):
            self._discard(c)

    def warm(self, count: int) -> int:
        """Open connections ahead of need until `count` are idle; returns how many opened."""
        def open_one() -> Any:
            c = self._fresh()
            with self._opened_lock:
                self._opened.add(c)
            return c
        return self._pool.fill(count, open_one)

    def close_idle(self) -> None:
        """Close the pooled connections (their owner stops; threads keep their own)."""
        for conn in self._pool.drain():
            self._discard(conn)

    def idle_count(self) -> int:
        return len(self._pool)

    def close(self) -> None:
        """Close this thread's connection."""
        local = self._local
        c = getattr(local, "conn", None)
        local.conn = None
        if c is not None and local.pid == current_pid():
            self._discard(c)

    def close_all(self) -> None:
        """Close every connection, idle ones included (the owner is done with the store)."""
        self._pool.drain()
        with self._opened_lock:
            opened, self._opened = self._opened, set()
        for conn in opened:
            with suppress(*DB_ERRORS):
                conn.close()
        self._local = threading.local()

    def render(self, item: SchemaItem) -> list[str]:
        """The statements that create `item` in this engine (idempotent)."""
        if isinstance(item, str):
            return [item]
        if isinstance(item, Step):
            return [item.statement]
        return self.render_guard(item)

    @abstractmethod
    def render_guard(self, item: AppendOnly | SetOnce) -> list[str]:
        """The trigger statements that make the engine enforce `item`."""

    def before_upgrade(self, what: str) -> None:
        """Called in the write transaction that is about to upgrade `what` (a component's
        tables from an older version): raise to refuse it. A no-op where upgrades are explicit
        (`stockade store migrate` on a shared store); a SQLite home refuses while another
        process serves it (`SqliteStore`)."""
        return None

    def clock_in(self, c: Any) -> float | None:
        """The store's own clock as write transaction `c` (this store's) took the write lock,
        where writers on several machines share the store and their clocks may disagree
        (`host.store.pg`); None where every writer reads one machine's clock (SQLite's file:
        the caller's own clock is that clock)."""
        return None

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether `name` exists (read-only CLI paths must not create anything)."""

    @abstractmethod
    def fence(self, host_id: str) -> None:
        """Refuse every later write transaction once `host_id`'s lease on a shared store is
        gone (`host.store.pg`); a no-op where no other host can take the lease away."""

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Background upkeep of the engine's log, where the host must do it (SQLite's WAL)."""
        return 0, 0, 0


class PgError(Exception):
    """A PostgreSQL statement failed (psycopg's exception is the `__cause__`). Raised by the
    PostgreSQL backend in psycopg's place, so that catching a store failure does not import
    psycopg into every process (it costs a CLI command a fifth of its start-up)."""


class PgIntegrityError(PgError):
    """A PostgreSQL constraint decided (a name taken, a row gone)."""


class Fenced(PgError):
    """This host's lease on a shared store is gone (a survivor found it past its grace and
    settled its calls): its write transaction was refused before it wrote anything
    (`host.store.pg`, `PgStore.fence`). A store failure like any other to its callers: the
    call in flight fails closed."""


class UnstorableText(ValueError):
    """A text parameter holds a NUL character (U+0000), which PostgreSQL can neither store nor
    compare (psycopg refuses it before sending). It is the caller's bad input, not a store
    failure: the REST API answers 400, the bridge `invalid_argument`, and nothing was written
    (the statement never ran; the transaction around it rolls back). SQLite stores and matches
    such text, so only a shared store raises it."""


#: Catch these where a statement may fail for reasons outside the host (disk, lock, network).
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, PgError)
#: Catch these where a store cannot be used at all or a statement failed (one line to the
#: operator: unreachable, unmigrated, refused).
STORE_FAILURES: tuple[type[Exception], ...] = (StoreError, *DB_ERRORS)
#: Catch these where a unique or foreign key constraint decides (a name taken, a row gone).
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, PgIntegrityError)
