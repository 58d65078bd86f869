"""Who holds a lock the host is kept waiting on, for the operator's message (`/proc/locks`).

A command kept waiting on `host.db`'s write lock past its busy timeout, or a starting host on
`HOME/host.lock`, used to say only "database is locked" ("unexpected ..., please report it")
or "another host": the operator then had to guess which process, and whether it was stopped
(SIGSTOP, a terminal's Ctrl-Z) or working. Linux lists every file lock with its owner's pid;
the process named is then described by its command line (quoted: any local process's words)
and whether it is stopped. A convenience for the message, not a security check: where
`/proc/locks` says nothing, the message says "another process".
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from host.home import redact_url

# Characters of the lock holder's command line shown to the operator (it names the process),
# and the bytes of it read first, so each argument is masked whole before it is shortened.
MAX_CMDLINE = 200
CMDLINE_READ = 16 * 1024
# The byte of a WAL database's `-shm` file whose POSIX write lock is SQLite's write lock
# (WALINDEX_LOCK_OFFSET 120 + WAL_WRITE_LOCK 0, in SQLite's wal.c).
WAL_WRITE_LOCK_BYTE = 120


def file_id(st: os.stat_result) -> str:
    """A file as `/proc/locks` names it: major:minor:inode (hex device numbers)."""
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def _lock_rows() -> list[list[str]] | None:
    """`/proc/locks`, a row of fields per lock, or None where it cannot be read."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            return [line.split() for line in f]
    except OSError:
        return None


def holder(ident: str, kind: str, byte: int | None = None) -> str:
    """Who holds a write lock of `kind` ("FLOCK" or "POSIX") on the file `ident` (covering
    `byte`, for a POSIX lock): "process N ('its command line')", ", stopped" when it is."""
    for row in _lock_rows() or ():
        if len(row) < 8 or row[1] != kind or row[3] != "WRITE" or row[5] != ident:
            continue
        if byte is not None and not _covers(row[6], row[7], byte):
            continue
        return describe(row[4])
    return "another process"


def lock_pids(ident: str, kind: str) -> list[str] | None:
    """The pids holding a lock of `kind` ("FLOCK" or "POSIX"), shared or exclusive, on the file
    `ident` (waiters, listed with `->`, hold nothing), or None where `/proc/locks` cannot be
    read. A pid the reader's PID namespace cannot see is listed as the kernel shows it (0)."""
    rows = _lock_rows()
    if rows is None:
        return None
    return [row[4] for row in rows
            if len(row) >= 6 and row[1] == kind and row[3] in ("READ", "WRITE")
            and row[5] == ident]


def db_write_lock_holder(db: Path) -> str:
    """Who holds the SQLite write lock of the WAL database `db` (see `holder`)."""
    try:
        ident = file_id(os.stat(f"{db}-shm"))
    except OSError:
        return "another process"
    return holder(ident, "POSIX", WAL_WRITE_LOCK_BYTE)


def describe(pid: str) -> str:
    """ "process N ('command line')", with ", stopped" when the kernel says it is."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as c:
            raw = c.read(CMDLINE_READ + 1)
    except OSError:
        return f"process {pid}"
    args = raw[:CMDLINE_READ].decode("utf-8", "replace").split("\0")
    if len(raw) > CMDLINE_READ:
        args[-1] = "..."  # cut: a partial argument may be a URL whose password no one can find
    # Masked whole, then shortened: a URL cut first could show part of its password.
    argv = " ".join(_shown(a) for a in args if a)[:MAX_CMDLINE]
    said = f"process {pid} ({argv!r})"
    return said + (", stopped" if _stopped(pid) else "")


def _shown(arg: str) -> str:
    """One argument as the message shows it: a URL's password masked (`--store URL`,
    `--store=URL`, `STOCKADE_STORE=URL` on a command line: the holder may be any command
    given the store's URL, and the message goes to another operator's screen and logs)."""
    if "://" not in arg:
        return arg
    name, eq, value = arg.partition("=")
    if eq and "://" in value and "://" not in name:
        return f"{name}={redact_url(value)}"
    return redact_url(arg)


def store_locked(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is SQLite's "database is locked": the busy timeout ran
    out while another process held the write lock."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, sqlite3.OperationalError) and "database is locked" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _covers(start: str, end: str, byte: int) -> bool:
    try:
        return int(start) <= byte and (end == "EOF" or byte <= int(end))
    except ValueError:
        return False


def _stopped(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold any byte.
    state = stat.rpartition(")")[2].split()
    return bool(state) and state[0] in ("T", "t")
