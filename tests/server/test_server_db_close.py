"""A closed `Database` leaves no connection of its own open, whatever thread opened it.

Each thread that touches the embedded server gets a connection of its own (`Database.conn`).
Its owner's stop (`Host.stop`) could only `close` it, which closes the calling thread's and the
idle pooled ones: the connections of threads still alive (a REST or console worker thread parked
in its pool) stayed open after their owner stopped, the file, its WAL and -shm, until the thread
ended, or for ever when the thread outlived the owner (DESIGN rule 13: whatever a component
opens, its stop closes). The host's other stores close every connection they opened
(`Store.close_all`); the server's database now does the same (`Database.close_all`).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host.server.db import Database

THREADS = 4


def _fds_on(path: Path) -> int:
    """This process's open descriptors on `path` (and its -wal and -shm)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith(str(path))
        except OSError:
            pass
    return n


def _use(db: Database) -> int:
    return int(db.conn().execute("SELECT count(*) FROM roles").fetchone()[0])


def test_a_closed_database_closes_the_connections_of_threads_still_alive(
        tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    db = Database(path)
    assert _use(db) > 0
    started = threading.Barrier(THREADS)

    def use_and_stay() -> int:
        started.wait(5)  # every worker its own thread, each with its own connection
        return _use(db)

    # Workers that stay alive after their work, as a REST handler pool's do.
    with ThreadPoolExecutor(THREADS) as pool:
        assert all(list(pool.map(lambda _: use_and_stay(), range(THREADS))))
        ended = threading.Thread(target=lambda: (_use(db), db.release()))  # one gives it back
        ended.start()
        ended.join(5)
        assert _fds_on(path) >= THREADS + 1  # each live worker's and the main thread's
        db.close_all()
        # Before (`close`, all there was): 11 left open, each live worker's connection.
        assert _fds_on(path) == 0
        db.close_all()  # idempotent
    assert _fds_on(path) == 0
    reopened = Database(path)  # a closed database's file opens again as usual
    assert _use(reopened) > 0
    reopened.close_all()
    assert _fds_on(path) == 0
