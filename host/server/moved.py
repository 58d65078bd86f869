"""A `server.db` whose data `stockade store migrate` has copied into `host.db`.

The merge (`host/mergeserver.py`) copies the file's tables into `host.db` under both files' write
locks, marks the file (`MARK`, a table made in the same transaction), commits, and only then
renames the file away. A process that opened `server.db` before the merge (a one-shot command:
the home's lease keeps hosts out, not them) and writes in the instant between the commit and the
rename, or at any time after it (a command that sat at a prompt, a long export), would write to
a file nobody reads again. `refuse_if_moved`, run by `Database.write` inside its write lock,
refuses that write instead: while the merge runs, and once `server.db` no longer names the
marked file (the mark holds that file's inode).

A mark left by a merge that stopped between its commit and its rename (a crash) refuses
nothing: with no merge running and `server.db` still naming the marked file, it is still the
home's server data, and the next merge drops the mark and copies the file again.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path

from host.home import Home
from host.store import StoreError

MARK = "moved_into_host_db"

MOVED_MESSAGE = ("server.db's data was moved into host.db by `stockade store migrate` while this "
                 "command ran; nothing was written: run the command again")


def refuse_if_moved(c: sqlite3.Connection, path: Path) -> None:
    """Raise `StoreError` when the server file open on `c` (inside a write transaction) is
    marked as moved and the merge that marked it still runs, or has renamed it away from
    `path` (nothing there, or another file)."""
    if c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                 (MARK,)).fetchone() is None:
        return
    if merge_running(Home(path.parent).lease_path):
        raise StoreError(MOVED_MESSAGE)
    columns = {r[1] for r in c.execute(f'PRAGMA table_info("{MARK}")')}
    # A mark made before marks held the inode: only a missing `server.db` says it moved.
    row = c.execute(f'SELECT ino FROM "{MARK}"').fetchone() if "ino" in columns else None  # noqa: S608
    try:
        here = os.stat(path).st_ino
    except FileNotFoundError:
        raise StoreError(MOVED_MESSAGE) from None
    if row is not None and row[0] is not None and int(row[0]) != here:
        raise StoreError(MOVED_MESSAGE)


def merge_running(lease_path: Path) -> bool:
    """Whether a process holds the home's lease exclusively (a merge does throughout; a host
    only while it settles at its start)."""
    try:
        fd = os.open(lease_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
