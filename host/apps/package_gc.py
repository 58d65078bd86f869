"""Stored packages no install needs any more, removed.

Every install, update and pending update stores its package under
`HOME/packages/<sha256>/package.zip` (`host.apps.package_store.store_package`) before its record
names it, and an uninstall removes its own. What was left behind for good: the version an
update replaced, a pending update the operator rejected or a newer pending one replaced, a
package stored by an install that then failed. A home updated daily grew by a package a day.
After each operator action that can leave one behind, the folders no install record names
(installed or pending) are removed here.

Only folders named as a store names them (64 lowercase hex digits), never a symlink, and only
when older than `STORED_GRACE_S`: another operator's install (the console and the CLI run in
other processes) stores its package before its record exists, and a package stored moments ago
may be that one. Storing rewrites the file, so a package stored again for a new install is
young again whatever its age before.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

from host.apps.installs import InstallStore
from host.home import Home

log = logging.getLogger("stockade.host")

# A package folder younger than this may belong to an install (or update) whose record is not
# written yet: the window between storing a package and committing the record that names it is
# normally milliseconds, but a consent prompt, a slow store or a paused process can stretch it.
# Guards an in-flight install from losing its package (its app would not start until installed
# again). An hour costs nothing but an hour's disk.
STORED_GRACE_S = 3600.0
# What `store_package` names a folder: a SHA-256 hex digest (of the stored zip's own bytes;
# of the package's content hash in folders stored before). Anything else under packages/ is
# the operator's, never removed.
_STORED_NAME = re.compile(r"[0-9a-f]{64}\Z")


def unreferenced(home: Home, now: float) -> list[Path]:
    """The package folders under `home` that no install record names and that are older than
    the grace."""
    root = home.packages_dir
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    with InstallStore(home.host_store) as store:
        named = {p for rec in store.list()
                 for p in (rec.package_path, rec.pending.package_path if rec.pending else None)
                 if p is not None}
    # By the folder's name alone (the digest it is stored under), not its path: a record names
    # the path the home had when it was stored, and the same home spelled another way
    # (relative, through a symlink, copied to the same path on another machine) must keep it
    # all the same.
    kept = {p.parent.name for p in named}
    out: list[Path] = []
    for entry in entries:
        path = root / entry.name
        if not _STORED_NAME.fullmatch(entry.name) or entry.name in kept:
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        if now - _newest_mtime(path) < STORED_GRACE_S:
            continue
        out.append(path)
    return sorted(out)


def prune_packages(home: Home, now: float | None = None) -> list[Path]:
    """Remove the packages no install needs (see the module docstring); returns what went. A
    folder that cannot be removed is logged and left for the next time: the operator's action
    that called this has already succeeded."""
    gone: list[Path] = []
    try:
        # The system's clock, not the host's `Clock`: it is compared with the file system's
        # modification times, which that clock stamps.
        stale = unreferenced(home, time.time() if now is None else now)
    except Exception:  # the records could not be read: remove nothing
        log.exception("could not list the stored packages to remove")
        return gone
    for path in stale:
        try:
            shutil.rmtree(path)
        except OSError as exc:
            log.warning("could not remove the superseded package %s: %s", path, exc)
        else:
            gone.append(path)
    return gone


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of the folder or anything directly in it (never following a
    symlink): a package stored again refreshes its file, not necessarily its folder."""
    newest = folder.lstat().st_mtime
    with os.scandir(folder) as it:
        for entry in it:
            newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest
