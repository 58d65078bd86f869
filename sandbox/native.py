"""The C library handle the confinement layers call through, resolved once per process.

Why cached: the zygote resolves it (and every function the layers call) before it forks, so
a forked child confines itself without building new ctypes objects. Each fresh `CDLL` and
each first attribute lookup allocates Python and native objects; in a forked child those
writes copy pages it would otherwise share with the zygote (measured: about 1 MiB of private
memory per idle child, and a slower start).
"""
from __future__ import annotations

import ctypes
from typing import Any

# The libc functions the confinement layers (sandbox.confine, .landlock, .seccomp) and the
# zygote's fork (sandbox.zygote) call.
FUNCTIONS = ("syscall", "prctl", "unshare", "fork")

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The process's C library with errno capture (`ctypes.get_errno` after a failed call)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def warm() -> None:
    """Resolve every function the layers call, so a forked child only looks them up."""
    lib = libc()
    for name in FUNCTIONS:
        func: Any = getattr(lib, name)
        assert callable(func)
