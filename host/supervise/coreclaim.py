"""A claim on one core for a host's threads, machine-wide: two hosts never place theirs on the
same core.

`HostConfig.host_core` puts every thread of a host process on one core
(`host.supervise.affinity`). Several hosts may run on one machine (sharing one home, docs/SCALE.md,
or each with its own); had each taken the first core, all of them would share it while the
others idled: two hosts serving four apps between them made 7 100 reads a second that way
against 12 000 for one host alone and 24 000 for two on cores of their own (docs/BENCH.md, "Four
apps at once: what a read costs the host").

A claim is a Unix socket bound to an abstract address naming the core: the kernel refuses a
second bind while the first is open and frees the name when its process ends however it ends,
so no file is left behind to go stale, and hosts of different homes or users see each other's
claims. The socket is close-on-exec (Python's default), so no child holds a claim past its
host. Abstract addresses are per network namespace: hosts in separate namespaces do not see
each other's claims, and may share a core.
"""
from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable

# The abstract address's name for a core (the leading NUL makes it abstract). Names the product,
# so an unrelated program's sockets cannot collide with it by accident.
_NAME = "\0stockade/host-core/{cpu}"


class CoreClaim:
    """One core claimed for this process's host threads, until every holder released it (or the
    process ends). Shared within a process: its threads can be on one core only, so a second
    host in the same process (tests, embedders) places its threads where the first did."""

    def __init__(self, cpu: int, sock: socket.socket) -> None:
        self.cpu = cpu
        self._sock: socket.socket | None = sock
        self._holders = 1

    def release(self) -> None:
        with _lock:
            self._holders -= 1
            if self._holders == 0 and self._sock is not None:
                self._sock.close()
                self._sock = None

    @property
    def held(self) -> bool:
        return self._sock is not None


_lock = threading.Lock()
_mine: CoreClaim | None = None  # this process's claim while any holder keeps it


def claim_core(cpus: Iterable[int]) -> CoreClaim | None:
    """The core this process already claimed, or the first of `cpus` (in order) that no other
    host on this machine claims; None when every one is taken. `release` it when done."""
    global _mine
    with _lock:
        if _mine is not None and _mine.held:
            _mine._holders += 1
            return _mine
        for cpu in cpus:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(_NAME.format(cpu=cpu))
            except OSError:  # EADDRINUSE: another host's threads are on it
                sock.close()
                continue
            _mine = CoreClaim(cpu, sock)
            return _mine
        return None


def _forked() -> None:
    """A forked child is not the host: it lets go of the claim's socket, which would otherwise
    keep the core claimed after the host itself released it or ended."""
    global _mine, _lock
    _lock = threading.Lock()
    if _mine is not None and _mine._sock is not None:
        _mine._sock.close()
        _mine._sock = None
    _mine = None


os.register_at_fork(after_in_child=_forked)
