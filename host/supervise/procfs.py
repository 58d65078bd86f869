"""What the kernel's /proc says about a child: its own children, the ids it runs as, the CPU
time it has used."""
from __future__ import annotations

import os

# Read with os.read, not a buffered file object, so the idle watch's round (three reads an
# app, every app, every 2 s) holds the GIL about half as long (`watchdog.IdleWatch`).
_PROC_CHUNK = 4096


def _read(path: str) -> bytes:
    """The whole file: a `children` list of a child that forked many is longer than a page, and
    one left out would hide its CPU time."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _PROC_CHUNK)
        if len(data) < _PROC_CHUNK:
            return data
        parts = [data]
        while chunk := os.read(fd, _PROC_CHUNK):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def children_of(pid: int) -> list[int]:
    """The pids `pid` forked (its PID namespace's init has the app process as its child)."""
    try:
        return [int(n) for n in _read(f"/proc/{pid}/task/{pid}/children").split()]
    except OSError:
        return []


def runs_as(pid: int, uid: int) -> bool:
    """Whether the kernel says every uid and gid of `pid` (real, effective, saved, fs) is `uid`.

    On every start's path (the handshake waits for it): the two lines are found in the text,
    not the ~55 lines split into a dict (~0.1 ms of the host's CPU a start)."""
    try:
        text = _read(f"/proc/{pid}/status")
    except OSError:
        return False
    want = [str(uid).encode()] * 4
    return _status_ids(text, b"Uid") == want and _status_ids(text, b"Gid") == want


def _status_ids(text: bytes, name: bytes) -> list[bytes]:
    """The values of the status line `name`: its last occurrence at a line's start, as a
    parse line by line would keep (the Name line before it is the process's to set; the
    kernel escapes a newline in it, and a line's start is looked for all the same)."""
    at = text.rfind(b"\n" + name + b":")
    if at < 0:
        return []
    start = at + len(name) + 2
    end = text.find(b"\n", start)
    return (text[start:] if end < 0 else text[start:end]).split()


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system, every thread) used so far by `pid` and the processes it forked
    that still run (a spawned child's stand-in and the app it forked); None once `pid` is gone.

    From /proc/<pid>/stat, whose figures for a process are the sums over its threads (a thread
    of its own does not hide work); one file per process, no system call on any event's path.
    """
    total = _own_cpu(pid)
    if total is None:
        return None
    for kid in children_of(pid):
        total += _own_cpu(kid) or 0.0
    return total


def _own_cpu(pid: int) -> float | None:
    try:
        # the command name (field 2) may hold spaces and parentheses: split after its end
        fields = _read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime
    except (IndexError, ValueError):
        return None
