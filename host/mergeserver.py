"""Moving a home's `server.db` into its `host.db` (`stockade store migrate` on a SQLite home).

A home made before the embedded server's tables moved into `host.db` keeps them in a `server.db`
of its own, and there a write on users, roles, agents or rooms takes three commits with an
intent between them (`host/gate/onetx.py`). This copies every table of that file into tables
`host.db` makes from this release's own schema, in one transaction, checks the foreign keys, and
only after that commit renames the old file to `server.db.merged-<time>` (kept: the operator
deletes it once satisfied).

The order makes every stopping point safe: until the rename, `Home.server_db` still names
`server.db` and a copy left in `host.db` is never read (the next merge drops it and copies
again); after it, `host.db` holds everything. Both files' write locks are held while copying
(one `BEGIN IMMEDIATE` over the attached file), so no writer can slip a change in between; the
home's lease is taken exclusively first, so no host serves meanwhile. A one-shot command that
opened `server.db` before and writes between the commit and the rename is refused, not lost:
the copy's transaction marks the file (`host/server/moved.py`), and `Database.write` checks the
mark under the write lock while the merge holds the lease.

host.db's server tables are dropped and made again only when they are empty (seed rows aside) or
hold the copy an unfinished merge of this very file committed (`COPYING` names its inode, in
host.db, in the copy's own transaction; dropped once the file is renamed). Any other data there
is the home's live server data (a home made, or merged, by this release), and a `server.db`
beside it is not: an older release run once on the home makes an empty one, a rollback renames
the kept file back. The merge refuses (`MergeRefused`) rather than copy that over it.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from host.home import Home
from host.ledger.lease import HomeLease, LeaseError
from host.server.db import Database
from host.server.migrations import SCHEMA_VERSION
from host.server.moved import MARK
from host.server.stray import COPYING, copy_of, held, server_schema, server_tables
from host.store import StoreError

# How long the merge waits for another process's write lock on either file (ms).
BUSY_TIMEOUT_MS = 10_000


class MergeRefused(Exception):
    """host.db already holds server data a merge would replace; nothing was changed."""


@dataclass(frozen=True)
class Merged:
    """What a merge moved: rows per table, and where the old file went."""

    rows: dict[str, int]
    kept_as: str


def merge_server_db(home: Home) -> Merged | None:
    """Move `server.db`'s tables into `host.db` (see the module docstring); None when the home
    has no `server.db`. Raises `LeaseError` while a host serves the home, `MergeRefused` when
    host.db holds server data of its own, `StoreError` for a server.db this release cannot
    read, `sqlite3.Error` on a store that cannot be read or written (nothing is then
    changed)."""
    if not home.server_apart:
        return None
    source = home.root / "server.db"
    lease = HomeLease(home.lease_path, wait_s=0.0)
    ran: list[Merged] = []
    try:
        lease.acquire(lambda: ran.append(_merge(home, source)))
    finally:
        lease.release()
    if not ran:
        raise LeaseError(f"{home.root}: a host is serving this home; stop it before "
                         "`stockade store migrate` moves server.db into host.db")
    return ran[0]


def _merge(home: Home, source: Path) -> Merged:
    tables = server_tables()  # names from this release's DDL, not from the file
    # Refused before server.db is touched: the `Database` below upgrades its schema, and the
    # older release that made it could no longer open it (checked again under the lock).
    with contextlib.closing(sqlite3.connect(home.host_db, isolation_level=None,
                                            timeout=BUSY_TIMEOUT_MS / 1000)) as main:
        _refuse_if_held(main, os.stat(source).st_ino)
    with contextlib.closing(sqlite3.connect(source, isolation_level=None,
                                            timeout=BUSY_TIMEOUT_MS / 1000)) as old:
        _refuse_if_newer(old)
        # A merge that stopped before its rename left its mark: this one copies again, and
        # its own `Database` below must not take the file for moved.
        old.execute(f'DROP TABLE IF EXISTS "{MARK}"')
    Database(source).close()  # server.db at this release's schema, as the copy expects
    with contextlib.closing(sqlite3.connect(source, isolation_level=None)) as old:
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # its rows in the file, its WAL empty
    main = sqlite3.connect(home.host_db, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        main.execute("PRAGMA foreign_keys=OFF")  # tables are copied one by one; checked after
        main.execute("ATTACH DATABASE ? AS old", (os.fspath(source),))
        # IMMEDIATE takes the write lock of both files: no writer of either until the COMMIT.
        main.execute("BEGIN IMMEDIATE")
        ino = os.stat(source).st_ino
        _refuse_if_held(main, ino)
        # A copy an earlier merge left before its rename is never read: dropped, made again.
        for name in tables:
            main.execute(f'DROP TABLE IF EXISTS main."{name}"')
        server_schema(main)
        rows: dict[str, int] = {}
        for name in tables:
            # The seat counter is not copied: this release's triggers counted the users as
            # they were copied, the truth a seat check must read; the file's own row may say
            # anything (an edit, a counter whose triggers were dropped there).
            if name != "app_seats":
                main.execute(f'DELETE FROM main."{name}"')  # noqa: S608 - the seed rows
                main.execute(f'INSERT INTO main."{name}" SELECT * FROM old."{name}"')  # noqa: S608
            rows[name] = int(main.execute(
                f'SELECT count(*) FROM main."{name}"').fetchone()[0])  # noqa: S608
        broken = main.execute("PRAGMA main.foreign_key_check").fetchall()
        if broken:
            raise sqlite3.IntegrityError(f"server.db's rows break {len(broken)} foreign keys "
                                         f"(first: {tuple(broken[0])}); nothing was moved")
        # The mark commits with the copy: a process holding server.db open is refused from
        # here on, until the rename puts the file out of every later process's reach.
        # With the file's inode: once the rename moved it, `server.db` names another file or
        # none, and a process still holding this one open is refused for good.
        main.execute(f'CREATE TABLE old."{MARK}" (at REAL NOT NULL, ino INTEGER)')
        main.execute(f'INSERT INTO old."{MARK}" VALUES (?, ?)',  # noqa: S608
                     (time.time(), ino))
        # host.db's side, in the same file as the copy: a stop before the rename leaves the
        # copy named as this file's, which the next merge may then replace.
        main.execute(f'CREATE TABLE IF NOT EXISTS main."{COPYING}" (ino INTEGER NOT NULL)')
        main.execute(f'DELETE FROM main."{COPYING}"')  # noqa: S608 - a constant name
        main.execute(f'INSERT INTO main."{COPYING}" VALUES (?)', (ino,))  # noqa: S608
        main.execute("COMMIT")
        # host.db now holds password and token hashes: the owner's only, as server.db was (a
        # home's older host.db may have been made readable by its group and others).
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{home.host_db}{suffix}", 0o600)
        kept = _kept_name(source)
        os.replace(source, kept)
        for suffix in ("-wal", "-shm"):  # renamed with it: a WAL belongs to its database file
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{source}{suffix}", f"{kept}{suffix}")
        # host.db's data is the home's own from here: a server.db that later appears (even
        # this one renamed back) must not replace it. Best effort: the move is done, and a
        # failure here (a full disk) must not report it as not done.
        with contextlib.suppress(sqlite3.Error):
            main.execute(f'DROP TABLE IF EXISTS main."{COPYING}"')
        return Merged(rows, kept.name)
    finally:
        if main.in_transaction:
            main.execute("ROLLBACK")
        main.close()


def _refuse_if_held(main: sqlite3.Connection, ino: int) -> None:
    """Raise `MergeRefused` when host.db's server tables hold data that is not the copy an
    unfinished merge of the file `ino` committed (module docstring; the same two questions
    keep every other command from serving such a server.db, `host.server.stray`)."""
    what = held(main)
    if what and not copy_of(main, ino):
        raise MergeRefused(
            f"host.db already holds the embedded server's data ({what}), and server.db is "
            "not a copy an unfinished `stockade store migrate` of this home began: moving it "
            "in would replace that data; nothing was changed")


def _refuse_if_newer(old: sqlite3.Connection) -> None:
    """Raise `StoreError` for a server.db this release cannot read: one from a newer release
    (its `Database` would refuse it as a host error), or one whose version is not a number."""
    if old.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                   "'schema_version'").fetchone() is None:
        return  # a server.db of the very first layout: `Database` makes the table
    row = old.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    version = None if row is None else row[0]
    if version is not None and not isinstance(version, int):
        raise StoreError(f"server.db's schema version is {str(version)[:40]!r}, not a number")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StoreError(f"server.db is from a newer Stockade (server schema version "
                         f"{version}; this one knows up to {SCHEMA_VERSION}): upgrade Stockade")


def _kept_name(source: Path) -> Path:
    """A name for the old file that no file has: an earlier merge's kept file (made in the same
    second) is never overwritten."""
    base = f"{source.name}.merged-{time.strftime('%Y%m%d%H%M%S')}"
    kept, n = source.with_name(base), 1
    while any(Path(f"{kept}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
        n += 1
        kept = source.with_name(f"{base}-{n}")
    return kept
