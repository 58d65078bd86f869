"""What the kernel's /proc says about a child: its own children, the ids it runs as."""
from __future__ import annotations


def children_of(pid: int) -> list[int]:
    """The pids `pid` forked (its PID namespace's init has the app process as its child)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(n) for n in f.read().split()]
    except OSError:
        return []


def runs_as(pid: int, uid: int) -> bool:
    """Whether the kernel says every uid and gid of `pid` (real, effective, saved, fs) is `uid`."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
    except OSError:
        return False
    want = [str(uid).encode()] * 4
    return fields.get(b"Uid", b"").split() == want and fields.get(b"Gid", b"").split() == want
