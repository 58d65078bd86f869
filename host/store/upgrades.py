"""A SQLite home's schema is upgraded only while no other process serves it.

A home's components are made or upgraded when a command first opens them (`host.store.schema`,
and the embedded server's `host.server.db`). A host that is serving opened its stores at the
layout its release knows, and keeps writing it: upgraded under it by a newer command (an `app
list` of the new release, a newer `serve` started beside it), it would go on inserting rows
without a column or past a trigger the new layout relies on. Every serving host holds a lock on
`HOME/host.lock` for as long as it serves (`host.ledger.lease`), so an upgrade first asks that
file: held by another process, the upgrade is refused, naming the process, and nothing changes;
held by no one, or only by this process's own host (which opened its stores before it took the
lease), it goes ahead. A security boundary for the layout's guarantees, not a convenience: the
kernel's answer (`flock`) decides; `/proc/locks` only tells this process's own lease apart and
names the holder (where it cannot be read, a held lock refuses).

What no lock can show: a host of an older release that opened its stores but has not yet taken
its lease (it verifies the audit chain in between) is not seen; it starts on the upgraded store.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from host.store.base import SchemaInUse
from host.store.lockholder import describe, file_id, lock_pids

# The lease file every serving host holds in its home (`host.home.Home.lease_path`).
LEASE_NAME = "host.lock"
# What the operator is told to do about a refused upgrade.
IN_USE_HINT = ("stop that host (it serves this home at the older layout), then run this command "
               "again; this release's `stockade serve` upgrades the home when it starts with no "
               "other host serving it. Nothing was changed")


def refuse_if_served(db: Path, what: str) -> None:
    """Raise `SchemaInUse` when a process other than this one holds the lease of the home
    holding `db` (its folder's `host.lock`); `what` names the upgrade for the message."""
    lease = db.parent / LEASE_NAME
    try:
        fd = os.open(lease, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # no host has served this home
    try:
        try:
            # For an instant: a host starting in it takes its shared lock without settling,
            # the safe side (`host.ledger.lease.others_serving`).
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return  # no one holds it (released as the file closes)
        except BlockingIOError:
            pass
        pids = lock_pids(file_id(os.fstat(fd)), "FLOCK")
    finally:
        os.close(fd)
    me = str(os.getpid())
    others = [pid for pid in pids or () if pid != me]
    if pids is not None and not others and me in pids:
        return  # this process's own host holds the lease, no one else
    who = describe(others[0]) if others else "another process"
    raise SchemaInUse(
        f"{db.name} needs its schema upgraded ({what}), but {who} serves this home (it holds "
        f"{lease}): upgraded under it, that host would keep writing the older layout",
        IN_USE_HINT)
