"""SQLite access for `host.db`: a tuned connection per thread, explicit `BEGIN IMMEDIATE`.

Why these settings:

- WAL lets readers (the CLI, `audit verify`, other host processes) run while a writer commits.
- `synchronous=NORMAL` in WAL mode makes a commit an append to the WAL without an fsync; a
  process crash loses nothing, a power loss can lose the newest commits (never corrupts). The
  hot path (admit + outcome per bridge write) cannot afford two fsyncs per call.
- `busy_timeout` makes a second process wait for the write lock instead of failing at once;
  every write transaction starts with `BEGIN IMMEDIATE`, so the lock is taken *before* the
  first read and two processes can never both read "one unit left" and both take it.
- `wal_autocheckpoint` is raised so that commits on the call path rarely pay for copying the
  WAL back into the database; `checkpoint()` is meant for a background thread.

Connections are per thread (sqlite3 objects must not cross threads) and per process (a
connection inherited across `fork` is unusable), so `Store.conn()` checks both.

Each component keeps its own schema version in `schema_meta(component, version)`: several
modules (installs, quota, audit, persistence) share `host.db`, so the single
`PRAGMA user_version` cannot describe them all.
"""
from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from host.errors import StartRefused
from host.home import Home
from host.store.base import (
    SCHEMA_TOO_NEW_HINT,
    AppendOnly,
    SchemaTooNew,
    SetOnce,
    Store,
    StoreError,
)
from host.store.diskfull import disk_full_refusal, no_space
from host.store.pid import current_pid
from host.store.upgrades import refuse_if_served
from host.store.writeturn import begin, turn_for

# How long a writer waits for another process's write lock before failing (ms). Guards against
# spurious "database is locked" under contention from several host processes; long enough to
# ride out a WAL checkpoint, short enough that a wedged peer surfaces as an error.
BUSY_TIMEOUT_MS = 10_000

# WAL pages before an automatic checkpoint runs inside a commit (default 1000 ≈ 4 MiB). Larger
# means fewer stalls on the call path; `Store.checkpoint()` from a background thread keeps the
# WAL from growing without bound. ~80 MiB, as the embedded server's own file had: host.db now
# takes its writes too (a create writes ~15 pages), and at 4 000 one create in a few hundred paid
# for a checkpoint in its commit (create p99 2.3-2.7 ms against 1.5-2.2 ms, `bench --quick` A/B
# interleaved three times; p50 unchanged).
WAL_AUTOCHECKPOINT_PAGES = 20_000


class SqliteStore(Store):
    """Connection factory for one SQLite file (normally `HOME/host.db`)."""

    dialect = "sqlite"

    def __init__(self, db_path: Path | str, *, readonly: bool = False,
                 named_rows: bool = False) -> None:
        super().__init__()
        self.path = Path(db_path)
        self.readonly = readonly
        self.named_rows = named_rows  # rows readable by column name (sqlite3.Row)
        self.local_dir = self.path.parent
        self._where = os.path.abspath(self.path)  # its write turn's key (`host.store.writeturn`)

    @property
    def where(self) -> str:
        return str(self.path)

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (pooled or opened on first use; reopened after fork)."""
        local = self._local
        c: sqlite3.Connection | None = getattr(local, "conn", None)
        if c is not None and local.pid == current_pid():
            return c
        adopted: sqlite3.Connection = self._adopt()
        return adopted

    def _fresh(self) -> sqlite3.Connection:
        c = self._open()
        if self.named_rows:
            c.row_factory = sqlite3.Row
        # Read the schema now, not on the first statement of the thread that gets it: a pooled
        # connection is opened ahead of need, off the start path (`host.store.pool`).
        c.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return c

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_raw()
        except sqlite3.OperationalError as exc:
            # On a full disk SQLite cannot make the WAL's files and says "disk I/O error" or
            # "unable to open": the operator's to fix, said as such (not "please report it").
            if no_space(self.path.parent if self.path.parent.exists() else Path("/")):
                raise disk_full_refusal(self.path) from exc
            raise

    def _open_raw(self) -> sqlite3.Connection:
        special = not_regular(self.path)
        if special is not None:
            raise StoreError(special)
        if self.readonly:
            if not self.path.exists():
                raise StoreError(f"no store at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            c = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            # isolation_level=None: the sqlite3 module must not open implicit transactions; we
            # issue BEGIN IMMEDIATE ourselves so the write lock is taken before the first read.
            # check_same_thread=False: `close_all` closes it from another thread, and an idle
            # connection moves to the next thread that needs one (`host.store.pool`); a
            # connection is only ever used by one thread at a time.
            c = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                check_same_thread=False)
            if fresh:
                # The owner's only: it holds the audit log and, in a home's host.db, the embedded
                # server's users, password and token hashes (its WAL and shm files follow).
                os.chmod(self.path, 0o600)
        c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not self.readonly:
            # A deleted or rewritten row's bytes are zeroed, not left in a free page: guards a
            # rotated secret setting, a consent replaced, a forgotten app's data against a read
            # of the file (a backup, a copied home). Debian's build defaults to it; others do not.
            c.execute("PRAGMA secure_delete=ON")
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                c.close()
                raise StoreError(f"{self.path}: cannot enable WAL (journal_mode={mode})")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        c.execute("PRAGMA foreign_keys=ON")
        return c

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` … `COMMIT` (or `ROLLBACK` on any exception, which then propagates)."""
        return immediate(self.conn(), self._where, BUSY_TIMEOUT_MS)

    def fence(self, host_id: str) -> None:
        """Nothing to fence: a home's lease is a `flock` that no host takes from a live, even a
        stopped, one (`host.ledger.lease`), so no one settles a stopped host's calls."""

    def before_upgrade(self, what: str) -> None:
        """Refuse an upgrade while another process serves the home (`host.store.upgrades`)."""
        refuse_if_served(self.path, what)

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Run a WAL checkpoint (background thread). Returns (busy, log pages, checkpointed)."""
        if mode not in {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}:
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        row = self.conn().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def render_guard(self, item: AppendOnly | SetOnce) -> list[str]:
        if isinstance(item, AppendOnly):
            return [
                f"CREATE TRIGGER IF NOT EXISTS {item.table}_no_{verb.lower()} BEFORE {verb} "
                f"ON {item.table} BEGIN SELECT RAISE(ABORT, '{item.message}'); END"
                for verb in ("UPDATE", "DELETE")
            ]
        if isinstance(item, SetOnce):
            return [
                f"CREATE TRIGGER IF NOT EXISTS {item.name} BEFORE UPDATE OF {item.column}"
                f" ON {item.table} WHEN OLD.{item.column} IS NOT NULL"
                f" BEGIN SELECT RAISE(ABORT, '{item.message}'); END"]
        raise TypeError(f"unknown schema item {item!r}")

    def has_table(self, name: str) -> bool:
        return table_exists(self.conn(), name)



@contextmanager
def immediate(c: sqlite3.Connection, where: str,
              busy_timeout_ms: int) -> Iterator[sqlite3.Connection]:
    """One write transaction on `c`, a connection to the file at `where` (an absolute path)
    whose `busy_timeout` is `busy_timeout_ms`: `BEGIN IMMEDIATE` … `COMMIT`, `ROLLBACK` on any
    exception.

    IMMEDIATE takes the write lock before the first read, so two processes can never both read
    "one unit left" and both take it, and a write never fails half-way on a lock upgrade. Both
    `host.db` (`Store.transaction`) and the embedded server's `server.db` (`Database.write`)
    open every write here. The lock is waited for in this process's turn for the file and by
    short retries, never SQLite's millisecond sleeps (`host.store.writeturn`).
    """
    turn = turn_for(where)
    begin(c, turn, busy_timeout_ms)
    try:
        yield c
        c.execute("COMMIT")
    except BaseException:
        # Also when COMMIT itself fails (disk full, I/O error): never leave the write lock
        # held by a half-open transaction.
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise
    finally:
        turn.lock.release()


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps, a few levels down) is SQLite's or the OS's "no space
    left": an operator's fault to report in one line, not a bug to log with a traceback."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, sqlite3.OperationalError) and "disk is full" in str(seen):
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def table_exists(conn: Any, name: str) -> bool:
    """Whether `name` is a table in this database (used by read-only CLI paths)."""
    if not isinstance(conn, sqlite3.Connection):
        row = conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
    ).fetchone()
    return row is not None


def not_regular(path: Path) -> str | None:
    """Why `path` cannot be a database file (it exists and is a FIFO, a device, a folder), or
    None. SQLite reads the header at open: a FIFO put at host.db by someone who can write the
    home blocked that read, and every command and `serve` opening the store, for ever."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing (or unreadable): SQLite's open says which
    return None if stat.S_ISREG(mode) else f"{path} is not a regular file"


def integrity_problem(path: Path) -> str | None:
    """What `PRAGMA quick_check` finds wrong with the database at `path`, or None when sound.

    Opened read-only, so checking creates nothing and changes nothing; a file that is not a
    database at all, or whose pages are overwritten, is a problem, never an exception."""
    special = not_regular(path)
    if special is not None:
        return special
    try:
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            rows = c.execute("PRAGMA quick_check").fetchall()
        finally:
            c.close()
    except sqlite3.OperationalError:
        # Not a verdict on the content (locked, unreadable, an immutable WAL database that
        # cannot make its shared-memory file): opening it for writing reports that better.
        return None
    except sqlite3.DatabaseError as exc:  # "malformed", "file is not a database"
        return str(exc)
    found = [str(r[0]) for r in rows]
    return None if found == ["ok"] else "; ".join(found[:3])


def refuse_damaged_stores(home: Home) -> None:
    """Fail closed before anything opens a store for writing: a damaged ledger cannot hold
    quotas or the audit chain, and a damaged server store cannot say what was applied."""
    for _label, path in home.sqlite_files():
        name = path.name
        if not path.exists():
            continue
        problem = integrity_problem(path)
        if problem is not None:
            raise StartRefused(
                f"{name} is damaged ({problem})",
                f"restore {path} from a backup (with audit.anchor for host.db); "
                "`stockade doctor` shows every check")


@contextmanager
def opening_stores(home: Home) -> Iterator[None]:
    """Open the home's stores inside this: a store that cannot be opened for writing
    (read-only file system or file, immutable, on a full or failing disk) becomes one clear
    `StartRefused` for the operator instead of a raw sqlite3 or OS error."""
    try:
        yield
    except (sqlite3.Error, StoreError, OSError) as exc:
        if isinstance(exc, SchemaTooNew):  # no file system fault: said as what it is
            raise StartRefused(str(exc), SCHEMA_TOO_NEW_HINT) from None
        if isinstance(exc, StartRefused):  # an upgrade refused while served: its own hint
            raise
        why = str(exc)
        with suppress(OSError):
            if os.statvfs(home.root).f_flag & os.ST_RDONLY:  # sqlite only says "unable to open"
                why = f"{why}: the file system is read-only"
        raise StartRefused(
            f"the stores in {home.root} cannot be opened for writing ({why})",
            "check the file system (read-only? full?), the files' owner, mode and attributes "
            "(`lsattr`); `stockade doctor` shows every check") from None
