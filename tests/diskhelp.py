"""A small real disk for the full-disk tests: a tmpfs the test fills, so SQLite itself answers
"database or disk is full" (ENOSPC). Mounting needs root, as the suite runs."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

TMPFS_BYTES = 1 << 20  # room for the server's schema and a few users, then full


@contextlib.contextmanager
def small_disk(where: Path, size: int = TMPFS_BYTES) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "stockade-test", where],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)


def fill(disk: Path) -> list[Path]:
    """Fill `disk` to the last byte; returns the filler files (delete them to free the space)."""
    fillers = []
    for i, chunk in enumerate((1 << 16, 4096, 1)):
        path = disk / f"filler{i}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * chunk)
        except OSError:
            pass  # ENOSPC: this chunk size no longer fits
        finally:
            os.close(fd)
        fillers.append(path)
    return fillers


def move_onto(db: Path, target: Path) -> None:
    """Move a SQLite database (with its WAL) to `target` and leave a symlink in its place."""
    c = sqlite3.connect(db)
    c.execute("VACUUM INTO ?", (str(target),))
    c.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.symlink_to(target)
