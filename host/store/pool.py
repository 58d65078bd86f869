"""Idle connections handed from a thread that is done with a store to the next one that needs it.

Each thread has a connection of its own (a transaction is per connection, so a shared one would
mix one thread's transaction into another's reads). The host starts an app on that app's own
runner thread, so without a pool every start opened fresh connections: on this machine a SQLite
connection costs ~0.3-1 ms to open and to read its schema on its first statement, about a third
of a cold start (docs/BENCH.md, "Where a cold start goes"). A runner that stops gives its
connections back here, and the host keeps a few opened ahead of need (`Store.warm`), as the
spawner keeps confined children ready.

A connection only moves between threads while idle: one inside a transaction is closed, never
pooled, and a connection opened before a `fork` is never handed out in the child.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from host.store.pid import current_pid

# Idle connections a store keeps for the next thread. Bounds the file descriptors and memory
# (~0.1 MiB a SQLite connection with its schema read) that stopped runners leave behind; more
# than a handful of app starts at the same moment open fresh connections, as before the pool.
POOL_IDLE_MAX = 8


class ConnPool:
    """Idle connections of one store, each tagged with the process that opened it."""

    def __init__(self, limit: int = POOL_IDLE_MAX) -> None:
        self.limit = limit
        self._idle: list[tuple[int, Any]] = []
        self._lock = threading.Lock()

    def take(self) -> Any | None:
        """An idle connection this process opened, or None."""
        pid = current_pid()
        with self._lock:
            while self._idle:
                owner, conn = self._idle.pop()
                if owner == pid:
                    return conn
                # Inherited across fork: never used here (SQLite forbids carrying a
                # connection across fork). Dropped: this process holds no lock through it.
        return None

    def give(self, conn: Any) -> bool:
        """Keep `conn` for the next thread; False (the caller closes it) when it is mid-
        transaction or the pool is full."""
        if conn.in_transaction:
            return False
        with self._lock:
            if len(self._idle) >= self.limit:
                return False
            self._idle.append((current_pid(), conn))
            return True

    def fill(self, count: int, open_one: Callable[[], Any]) -> int:
        """Open connections until `count` are idle (at most the limit); returns how many."""
        opened = 0
        while True:
            with self._lock:
                if len(self._idle) >= min(count, self.limit):
                    return opened
            conn = open_one()
            opened += 1
            if not self.give(conn):
                conn.close()
                return opened

    def drain(self) -> list[Any]:
        """Every idle connection of this process (the store is closing them)."""
        pid = current_pid()
        with self._lock:
            idle, self._idle = self._idle, []
        return [conn for owner, conn in idle if owner == pid]

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle)


class Pooled(Protocol):
    """A store whose threads' connections go through a `ConnPool` (`Store`, the embedded
    server's `Database`)."""

    def release(self) -> None: ...

    def warm(self, count: int) -> int: ...

    def close_idle(self) -> None: ...

    def close(self) -> None: ...

    def close_all(self) -> None: ...


_registered: weakref.WeakSet[Pooled] = weakref.WeakSet()
_registered_lock = threading.Lock()


def register(store: Pooled) -> None:
    """Let `release_thread` find `store` (held weakly: a dropped store leaves the set)."""
    with _registered_lock:
        _registered.add(store)


def registered() -> list[Pooled]:
    """Every registered store still alive (a copy: the set changes as stores come and go)."""
    with _registered_lock:
        return list(_registered)


def release_thread() -> None:
    """The calling thread is done (a runner that stops): every store's connection it holds goes
    back to that store's pool, for the next app's start."""
    for store in registered():
        store.release()


def releasing(fn: Callable[[], None]) -> Callable[[], None]:
    """`fn` as the target of a short-lived thread (a timer) that may touch stores: the thread's
    connections go back to the pools when it is done (`release_thread`). Without it each such
    thread's connection stayed open for the host's life: a store keeps every connection it
    opened until it closes (DESIGN rule 13)."""
    def run() -> None:
        try:
            fn()
        finally:
            release_thread()
    return run
