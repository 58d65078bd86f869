"""Small file primitives for state that several processes change: a whole-file write that is
never seen half done, and an exclusive lock held across a read-modify-write.

Why: the operator CLI runs next to other CLI runs and a serving host. A file rewritten in place
can be read (or left, on a full disk or a kill) empty or truncated; two writers sharing one
temporary name can rename each other's half-written file; and a change computed from what one
process read before another wrote is lost when written back. Readers take no lock: every write
here is a rename of a complete, fsynced file, so a reader sees the old file or the new one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`: a private temporary file in the same folder (its own name,
    so concurrent writers never share one), fsynced, renamed over `path`, the folder fsynced.
    On any failure (ENOSPC, a signal) the temporary file is removed and `path` is unchanged."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename's durability; not every filesystem allows
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def flocked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_path` for the block: a folder (locked itself, so no
    file is added to it), or a lock file (created 0600 if missing).

    The lock is per open file, so a process must not take it again while holding it (it would
    wait for itself); it is released when the block ends or the process dies."""
    if lock_path.is_dir():
        fd = os.open(lock_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def read_capped(path: Path, cap: int) -> bytes:
    """At most `cap + 1` bytes of `path` (more than `cap` read means: too large), which must be
    a regular file. For a file someone else handed in (a policy file, a snippet): opened
    without blocking, so a FIFO never holds the reader, and never read whole, so a link to
    /dev/zero or a huge file never fills memory. Raises OSError (EINVAL: no regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return fh.read(cap + 1)


def read_only_fs(path: Path) -> bool:
    """Whether the file system holding `path` is mounted read-only (as the kernel remounts one
    after I/O errors): SQLite then says only "unable to open database file"."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:  # not there, or not reachable: nothing to say about its mount
        return False
