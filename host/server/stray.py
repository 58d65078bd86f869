"""Whose is a home's `server.db`: the embedded server's data, or a stray beside host.db's?

A home made before the server's tables moved into `host.db` keeps them in a `server.db` of its
own, and `Home.server_db` names that file whenever it exists. Once host.db holds the server's
data (a home made by this release, or merged by `stockade store migrate`, `host/mergeserver.py`),
a `server.db` that appears beside it is not the home's: an older release run once on the home
makes an empty one, a rollback renames the kept file back. Opening the server there would serve
that file: host.db's users, rooms and tokens gone from the workspace, seats counted from the
wrong rows. `refuse_stray` refuses that open (a security boundary: the seat ceiling and every
account the operator knows are in host.db); the merge refuses to copy such a file over host.db
by the same two questions (`held`, `copy_of`).

host.db "holds server data" when its server tables hold rows beyond a new home's seed rows. The
one case where it does and `server.db` is still the home's: a merge of this very file committed
its copy and stopped before renaming the file (`COPYING` names the file's inode, written in the
copy's transaction); until it is run again, `server.db` is the truth.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from pathlib import Path

from host.errors import StartRefused
from host.server.migrations import _ROLES_SEED as ROLES_SEED  # the roles a new server starts with
from host.server.migrations import SCHEMA_VERSION, SERVER_VERSION_DDL, migration_statements
from host.store.pg import is_url

# host.db's table naming the server.db (by inode) whose copy a merge committed and has not yet
# renamed. Guards host.db's own server data: only that copy may be dropped and made again, and
# only then is a server.db beside server data in host.db still the home's.
COPYING = "server_db_copying"
# Server tables whose rows a home has before it holds any data: the version row and the seat
# counter (made again from the users copied). `roles` is compared with the roles seeded.
SEEDED = ("schema_version", "app_seats")
# The name of an older home's own server file (`Home.server_db`).
SERVER_DB = "server.db"
# How long the check waits for another process's write lock on host.db (seconds).
BUSY_TIMEOUT_S = 10.0


def server_schema(c: sqlite3.Connection) -> None:
    """The embedded server's tables, from this release's own DDL: never SQL read from a file
    being merged (a trigger planted there would run on the host's tables)."""
    c.execute(SERVER_VERSION_DDL)
    for version in range(SCHEMA_VERSION):
        for stmt in migration_statements(version, "sqlite"):
            c.execute(stmt)


@functools.cache
def server_tables() -> tuple[str, ...]:
    """The server's table names, the seat counter last (its triggers count the users while
    they are copied; its row is never copied)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as scratch:
        server_schema(scratch)
        names = [str(r[0]) for r in scratch.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    return tuple(sorted(names, key=lambda name: name == "app_seats"))


def held(main: sqlite3.Connection) -> str:
    """What host.db's server tables (on `main`) hold beyond a new home's seed rows ("3 users,
    1 rooms"), or "" when nothing."""
    present = {str(r[0]) for r in main.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'table'")}
    found: list[str] = []
    for name in server_tables():
        if name not in present or name in SEEDED:
            continue
        if name == "roles":
            rows = {tuple(r) for r in main.execute(
                "SELECT name, privileged, description FROM main.roles")}
            n = len(rows - set(ROLES_SEED))
        else:
            n = int(main.execute(f'SELECT count(*) FROM main."{name}"').fetchone()[0])  # noqa: S608
        if n:
            found.append(f"{n} {name}")
    return ", ".join(found)


def copy_of(main: sqlite3.Connection, ino: int) -> bool:
    """Whether host.db's server tables (on `main`) are the copy of the file `ino` an unfinished
    merge committed (`COPYING`)."""
    if main.execute("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?",
                    (COPYING,)).fetchone() is None:
        return False
    row = main.execute(f'SELECT ino FROM main."{COPYING}"').fetchone()  # noqa: S608
    return row is not None and int(row[0]) == ino


def stray(server_db: Path) -> StartRefused | None:
    """The refusal for opening the embedded server from `server_db` (a home's `server.db`) while
    the host.db beside it holds server data that is not that file's unfinished copy; None when
    the file is the home's server data (or no host.db is there)."""
    host_db = server_db.with_name("host.db")
    try:
        ino = os.stat(server_db).st_ino
    except FileNotFoundError:
        return None  # made on open, as in a home made before: nothing to hide yet
    if not host_db.exists():
        return None
    uri = f"{host_db.absolute().as_uri()}?mode=ro"  # read only: nothing made, nothing moved
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)) as main:
        main.execute("BEGIN")  # one snapshot for both questions
        what = held(main)
        if not what or copy_of(main, ino):
            return None
    return StartRefused(
        f"{server_db} would be served in place of the embedded server's data in {host_db} "
        f"({what}): a server.db beside a host.db that holds server data is not this home's "
        "(an older release run on the home makes one; a kept file renamed back); nothing was "
        "opened",
        f"host.db holds this home's server data since it was made or migrated: move "
        f"{server_db} out of {server_db.parent} (keep it if its data matters) and run the "
        "command again; `stockade doctor` shows every check")


def refuse_stray(target: Path | str) -> None:
    """Raise `stray`'s refusal when `target` (what the embedded server is opened on) is a
    home's `server.db` that is not the home's server data. A PostgreSQL URL, or a SQLite file
    of another name, is never one."""
    if is_url(target):
        return
    path = Path(target)
    if path.name != SERVER_DB:
        return
    refusal = stray(path)
    if refusal is not None:
        raise refusal
