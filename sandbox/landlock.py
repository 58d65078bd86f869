"""Landlock: a second, independent wall around the filesystem, TCP and signals.

The child handles every filesystem right the kernel knows and grants none, so even code that
got past both RestrictedPython and the seccomp filter cannot read, write, create, remove or
execute a file. Where the kernel supports it (ABI >= 4, >= 6) TCP bind/connect and signals to
processes outside the child's domain are refused too.

What Landlock does not govern (up to ABI 7, measured): naming a file without opening its
contents (an `O_PATH` open, then `fstat`: `/etc/shadow`'s size), `connect()` to a Unix socket
that has a file path, and metadata calls (`stat`, `chmod` of a file the child's uid owns). The
filter refuses those; the third wall is the child's empty root (`confine.enter_empty_root`),
where no absolute path names anything.
"""
from __future__ import annotations

import ctypes
import os
import struct

from sandbox import native

NR_CREATE_RULESET = 444
NR_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1

# Filesystem access rights by the ABI that introduced them (linux/landlock.h).
_FS_V1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_ALL = (1 << 0) | (1 << 1)  # BIND_TCP | CONNECT_TCP, ABI 4
_SCOPE_ALL = (1 << 0) | (1 << 1)  # ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6


def abi_version() -> int:
    """The Landlock ABI the running kernel offers (0 when it has none)."""
    rc = int(native.libc().syscall(NR_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))
    return max(rc, 0)


# (ABI, the ruleset attribute as the kernel reads it, its size), built once per process.
_ruleset: tuple[int, ctypes.Array[ctypes.c_char], int] | None = None


def prepare() -> tuple[int, ctypes.Array[ctypes.c_char], int]:
    """Ask the kernel's ABI and pack the ruleset attribute once per process.

    The zygote calls this before it forks (through `sandbox.confine.prepare`): done in each
    child, the ABI probe and the C buffer would allocate memory the child then keeps.
    """
    global _ruleset
    if _ruleset is None:
        abi = abi_version()
        fs = _FS_V1
        if abi >= 2:
            fs |= _FS_REFER
        if abi >= 3:
            fs |= _FS_TRUNCATE
        if abi >= 5:
            fs |= _FS_IOCTL_DEV
        net = _NET_ALL if abi >= 4 else 0
        scoped = _SCOPE_ALL if abi >= 6 else 0
        if abi >= 6:
            attr = struct.pack("QQQ", fs, net, scoped)
        elif abi >= 4:
            attr = struct.pack("QQ", fs, net)
        else:
            attr = struct.pack("Q", fs)
        _ruleset = (abi, ctypes.create_string_buffer(attr, len(attr)), len(attr))
    return _ruleset


def restrict_self() -> int:
    """Deny every filesystem right (and net/signal scope where known). Returns the ABI used.

    Requires no-new-privs. Raises OSError when the kernel refuses.
    """
    abi, buf, size = prepare()
    if abi < 1:
        raise OSError("landlock is not available in this kernel")
    libc = native.libc()
    fd = int(libc.syscall(NR_CREATE_RULESET, buf, size, 0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        if int(libc.syscall(NR_RESTRICT_SELF, fd, 0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(fd)
    return abi
