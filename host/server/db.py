"""The embedded server's SQLite store: one connection per thread, WAL, one transaction per
server operation, and a versioned schema.

Why these settings: WAL lets readers run while one writer commits; `synchronous=NORMAL` in WAL
mode keeps a commit durable against a process crash (the host's crash reconciliation relies on
`ops` rows, see `ops.py`) without an fsync per commit; `BEGIN IMMEDIATE` takes the write lock up
front so a write never fails half-way with SQLITE_BUSY on lock upgrade; `busy_timeout` makes the
several host threads and processes queue instead of failing.
"""
from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.server.moved import refuse_if_moved
from host.store import StoreError, immediate
from host.store.pg import SERVER_WRITE_LOCK, PgStore, is_url, redacted
from host.store.pool import ConnPool, register

# How long a writer waits for the lock before SQLITE_BUSY (several host threads share the file).
BUSY_TIMEOUT_MS = 5000
WAL_AUTOCHECKPOINT_PAGES = 20_000  # ~80 MiB of WAL before a write would checkpoint itself
# Prepared statements kept per connection: the hot paths use a few dozen fixed SQL strings.
STATEMENT_CACHE = 256

# Rocket.Chat-style ids: 17 characters of an alphabet without look-alikes (0/O, 1/l/I).
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_ID_LEN = 17
# Random bytes map to the alphabet by `bytes.translate` (a byte b < 220 to letter b % 55, 220
# being the largest multiple of 55 a byte can be; the rest are dropped, so every letter is
# equally likely): ~0.6 µs an id against ~2.2 for 17 big-integer divisions, on every creation.
_ID_KEEP = len(_ID_ALPHABET) * (256 // len(_ID_ALPHABET))
_ID_TABLE = bytes(ord(_ID_ALPHABET[b % len(_ID_ALPHABET)]) for b in range(256))
_ID_DROP = bytes(range(_ID_KEEP, 256))
# 32 bytes keep 17 or more but for about one draw in a million (then it draws again).
_ID_DRAW = 32


def new_id() -> str:
    """A random 17-character id (~98 bits; ids are names, not secrets, but must not collide)."""
    while True:
        kept = secrets.token_bytes(_ID_DRAW).translate(_ID_TABLE, _ID_DROP)
        if len(kept) >= _ID_LEN:
            return kept[:_ID_LEN].decode("ascii")


_ROLES_SEED = (
    ("admin", 1, "Full control of the workspace"),
    ("owner", 1, "Owner of rooms and the workspace"),
    ("moderator", 1, "Moderates rooms"),
    ("livechat-manager", 1, "Manages omnichannel: agents, departments, all rooms"),
    ("livechat-monitor", 1, "Monitors omnichannel rooms and agents"),
    ("user", 0, "An ordinary user"),
    ("bot", 0, "A bot user"),
    ("livechat-agent", 0, "Serves omnichannel rooms"),
    ("guest", 0, "A guest"),
    ("app", 0, "An app's own user"),
)

_SCHEMA_V1 = """
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('user', 'bot', 'app')),
    username TEXT NOT NULL,
    username_cf TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_by_app TEXT,
    app_id TEXT,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX users_app_id ON users(app_id) WHERE app_id IS NOT NULL;
CREATE INDEX users_created_by_app ON users(created_by_app, active)
    WHERE created_by_app IS NOT NULL;
CREATE TABLE user_emails (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    address_cf TEXT NOT NULL UNIQUE,
    verified INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, address_cf)
) WITHOUT ROWID;
CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    privileged INTEGER NOT NULL,
    description TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name),
    PRIMARY KEY (user_id, role)
) WITHOUT ROWID;
CREATE INDEX user_roles_role ON user_roles(role);
CREATE TABLE user_custom_fields (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
CREATE INDEX user_custom_fields_kv ON user_custom_fields(key, value);
CREATE TABLE agents (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('available', 'not-available')),
    added_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE departments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_cf TEXT NOT NULL UNIQUE,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE department_agents (
    department_id TEXT NOT NULL REFERENCES departments(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES agents(user_id) ON DELETE CASCADE,
    PRIMARY KEY (department_id, user_id)
) WITHOUT ROWID;
CREATE INDEX department_agents_user ON department_agents(user_id);
CREATE TABLE visitors (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    name TEXT,
    email TEXT,
    custom_fields TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE rooms (
    id TEXT PRIMARY KEY,
    visitor_id TEXT NOT NULL REFERENCES visitors(id),
    department_id TEXT REFERENCES departments(id),
    served_by TEXT REFERENCES users(id),
    open INTEGER NOT NULL DEFAULT 1,
    custom_fields TEXT NOT NULL DEFAULT '{}',
    agent_display TEXT,
    created_by_app TEXT,
    created_at REAL NOT NULL,
    closed_at REAL,
    closed_by_type TEXT,
    closed_by_id TEXT,
    close_comment TEXT,
    closed_by_app TEXT
) WITHOUT ROWID;
CREATE INDEX rooms_open_served ON rooms(open, served_by);
CREATE INDEX rooms_visitor ON rooms(visitor_id);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL REFERENCES rooms(id),
    sender_type TEXT NOT NULL CHECK (sender_type IN ('user', 'visitor')),
    sender_id TEXT NOT NULL,
    app_id TEXT,
    text TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX messages_room ON messages(room_id, seq);
CREATE TABLE ops (
    op_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    app_id TEXT,
    install_id TEXT,
    args_digest TEXT NOT NULL,
    result TEXT NOT NULL,
    applied_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE personal_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX personal_tokens_user ON personal_tokens(user_id);
"""

# Version 2: password hashes (host/server/auth.py), and which tokens are sign-ins.
_SCHEMA_V2 = """
CREATE TABLE user_passwords (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    hash TEXT NOT NULL
) WITHOUT ROWID;
ALTER TABLE personal_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'personal'
"""

# Version 3: a message's own display (Rocket.Chat's `alias`/`avatar`), set when an app relays
# an external agent's words; the real sender stays in sender_type/sender_id for audit and staff.
_SCHEMA_V3 = """
ALTER TABLE messages ADD COLUMN alias TEXT;
ALTER TABLE messages ADD COLUMN avatar TEXT
"""

# Version 4: the seat count kept by the database itself (DESIGN rules 8 and 11). `app_seats.n`
# is the number of active app-created users, changed by triggers in the same transaction as
# every insert, update or delete of a user, whatever route made it, so it always equals the
# COUNT(*) over `users` it replaces (which grew with every user an app ever created) and a
# creation's seat check reads one row. Started from that count when the migration runs.
_SCHEMA_V4 = """
CREATE TABLE app_seats (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO app_seats (id, n)
    SELECT 1, count(*) FROM users WHERE created_by_app IS NOT NULL AND active = 1;
CREATE TRIGGER app_seats_insert AFTER INSERT ON users
    WHEN NEW.created_by_app IS NOT NULL AND NEW.active = 1
    BEGIN UPDATE app_seats SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER app_seats_delete AFTER DELETE ON users
    WHEN OLD.created_by_app IS NOT NULL AND OLD.active = 1
    BEGIN UPDATE app_seats SET n = n - 1 WHERE id = 1; END;
CREATE TRIGGER app_seats_update AFTER UPDATE OF active, created_by_app ON users
    BEGIN UPDATE app_seats SET n = n + (NEW.created_by_app IS NOT NULL AND NEW.active = 1)
        - (OLD.created_by_app IS NOT NULL AND OLD.active = 1) WHERE id = 1; END
"""

# Version 5: a per-user sign-in epoch (host/server/auth.py `sign_in_binding`). Guards: a console
# session outliving its user's loss of standing. It moves, in the same transaction as the change
# and whatever route made it (REST, an operator's CLI, another host process), when the user loses
# an admin-class role or is deactivated, and never moves back, so a session bound to it at
# sign-in stays ended when the role or the active flag is given back, even if it made no request
# in between. (A password change moves the password record itself, which the binding also holds.)
_SCHEMA_V5 = """
ALTER TABLE users ADD COLUMN sign_in_epoch INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER sign_in_epoch_role_lost AFTER DELETE ON user_roles
    WHEN OLD.role IN (SELECT name FROM roles WHERE privileged <> 0)
    BEGIN UPDATE users SET sign_in_epoch = sign_in_epoch + 1 WHERE id = OLD.user_id; END;
CREATE TRIGGER sign_in_epoch_deactivated AFTER UPDATE OF active ON users
    WHEN OLD.active <> 0 AND NEW.active = 0
    BEGIN UPDATE users SET sign_in_epoch = sign_in_epoch + 1 WHERE id = NEW.id; END
"""

# Version 6: the room lists read an index in their own order, `created_at DESC, id`
# (`rooms.list_rooms`: newest first, by state; `rooms.seen_by`: an agent's served rooms, by
# state; `rooms.open_room_of`: a visitor's open room, by both equalities, so that no index on
# the state alone is taken for it). Guards: reads whose cost grew with every room ever made
# (each call sorted the whole rooms table, or scanned every closed room).
_SCHEMA_V6 = """
CREATE INDEX rooms_created ON rooms(created_at DESC, id);
CREATE INDEX rooms_open_created ON rooms(open, created_at DESC, id);
CREATE INDEX rooms_served_open ON rooms(served_by, open, created_at DESC, id);
CREATE INDEX rooms_visitor_open ON rooms(visitor_id, open, created_at DESC, id)
"""

# Version 7: the failed sign-in budget, shared by every process serving the store
# (`host/server/signin_budget.py`). Guards: online password guessing multiplied by the number of
# REST fronts and hosts on one home or PostgreSQL store, and reset by a restart, when each process
# kept its own table. One row per account (`user_id`, gone with the user) or per name that names
# none (`user_id` NULL, at most `auth.MAX_TRACKED_NAMES` of them, indexed for the eviction, and
# counted in `sign_in_names`, which only that module's writes change, in the same transaction).
_SCHEMA_V7 = """
CREATE TABLE sign_in_failures (
    key TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    seen TEXT NOT NULL,
    last_at REAL NOT NULL,
    blocked_until REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX sign_in_failures_names ON sign_in_failures(last_at) WHERE user_id IS NULL;
CREATE TABLE sign_in_names (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO sign_in_names (id, n) VALUES (1, 0)
"""

# Version 8: each sign-in budget row numbers the attempts it has counted (`counted`, never
# going back: a match no longer deletes an account's row). Guards: a sign-in that matched took
# back every failure of its account, also those counted while its own scrypt check ran, so a
# guesser firing while the owner signed in got up to MAX_FAILURES - 1 checks more than the
# budget for each of the owner's sign-ins; now it takes back only those counted before its own.
_SCHEMA_V8 = """
ALTER TABLE sign_in_failures ADD COLUMN counted INTEGER NOT NULL DEFAULT 0
"""

# The server's own schema version (a table of its own: it predates the host's `schema_meta`).
SERVER_VERSION_DDL = ("CREATE TABLE IF NOT EXISTS schema_version ("
                      "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")

# Ordered migrations: index i takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5,
                               _SCHEMA_V6, _SCHEMA_V7, _SCHEMA_V8)
SCHEMA_VERSION = len(MIGRATIONS)

# Version 4 on PostgreSQL (docs/SCALE.md): the same seat counter, kept by one PL/pgSQL trigger
# (SQLite's triggers add booleans as integers, which PostgreSQL does not). The other versions'
# SQL is portable and translated (`host.store.dialect`).
_SCHEMA_V4_PG = (
    "CREATE TABLE app_seats (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
    "INSERT INTO app_seats (id, n)"
    " SELECT 1, count(*) FROM users WHERE created_by_app IS NOT NULL AND active = 1",
    "CREATE OR REPLACE FUNCTION stockade_app_seats() RETURNS trigger LANGUAGE plpgsql AS $$"
    " DECLARE d BIGINT := 0; BEGIN"
    " IF TG_OP <> 'DELETE' AND NEW.created_by_app IS NOT NULL AND NEW.active = 1"
    " THEN d := d + 1; END IF;"
    " IF TG_OP <> 'INSERT' AND OLD.created_by_app IS NOT NULL AND OLD.active = 1"
    " THEN d := d - 1; END IF;"
    " IF d <> 0 THEN UPDATE app_seats SET n = n + d WHERE id = 1; END IF;"
    " RETURN NULL; END $$",
    "CREATE TRIGGER app_seats_change AFTER INSERT OR DELETE OR UPDATE OF active, created_by_app"
    " ON users FOR EACH ROW EXECUTE FUNCTION stockade_app_seats()",
)

# Version 5 on PostgreSQL: the same sign-in epoch, moved by PL/pgSQL triggers (a BEFORE trigger
# sets the deactivated row's epoch itself; SQLite's triggers cannot change NEW).
_SCHEMA_V5_PG = (
    "ALTER TABLE users ADD COLUMN sign_in_epoch BIGINT NOT NULL DEFAULT 0",
    "CREATE OR REPLACE FUNCTION stockade_sign_in_epoch_role_lost() RETURNS trigger"
    " LANGUAGE plpgsql AS $$ BEGIN"
    " IF EXISTS (SELECT 1 FROM roles WHERE name = OLD.role AND privileged <> 0) THEN"
    " UPDATE users SET sign_in_epoch = sign_in_epoch + 1 WHERE id = OLD.user_id; END IF;"
    " RETURN NULL; END $$",
    "CREATE TRIGGER sign_in_epoch_role_lost AFTER DELETE ON user_roles"
    " FOR EACH ROW EXECUTE FUNCTION stockade_sign_in_epoch_role_lost()",
    "CREATE OR REPLACE FUNCTION stockade_sign_in_epoch_deactivated() RETURNS trigger"
    " LANGUAGE plpgsql AS $$ BEGIN NEW.sign_in_epoch := OLD.sign_in_epoch + 1; RETURN NEW;"
    " END $$",
    "CREATE TRIGGER sign_in_epoch_deactivated BEFORE UPDATE OF active ON users FOR EACH ROW"
    " WHEN (OLD.active <> 0 AND NEW.active = 0)"
    " EXECUTE FUNCTION stockade_sign_in_epoch_deactivated()",
)


def migration_statements(version: int, dialect: str) -> list[str]:
    """The statements that take the schema from `version` to `version + 1` in `dialect`."""
    if dialect == "postgresql" and version == 3:
        return list(_SCHEMA_V4_PG)
    if dialect == "postgresql" and version == 4:
        return list(_SCHEMA_V5_PG)
    return _statements(MIGRATIONS[version])


class Database:
    """Per-thread connections to one SQLite file (or, shared by several hosts, a PostgreSQL
    database: docs/SCALE.md), plus the transaction helpers.

    Each thread gets its own connection from `conn()`; a thread that is done with the server
    (a runner that stops) gives it back with `release()`, and the next thread takes it idle from
    the pool (`host.store.pool`: it moves between threads only outside a transaction).
    """

    def __init__(self, target: Path | str, *, migrating: bool = False) -> None:
        self._local = threading.local()
        self._pool = ConnPool()
        register(self)
        self.target = target  # what another connection opens (`host.store.reading`)
        #: The shared store, when the server's data is in PostgreSQL; None for a SQLite file.
        self.shared: PgStore | None = None
        if is_url(target):
            self.shared = PgStore(str(target), migrating=migrating,
                                  write_lock=SERVER_WRITE_LOCK)
            self.path = Path(redacted(str(target)))  # a name for messages and caches only
            self._migrate_shared(migrating)
            return
        self.path = Path(target)
        self._where = os.path.abspath(self.path)  # its write turn's key (`host.store.writeturn`)
        # A server.db of its own (an older home's) may be moved into host.db while this process
        # has it open: each write checks, under the write lock, that it is not (`moved.py`).
        self._may_move = self.path.name == "server.db"
        self._migrate()

    def conn(self) -> Any:
        """This thread's connection (opened on first use), or the one lent to it (`lend`)."""
        loan: Loan | None = getattr(self._local, "loan", None)
        if loan is not None:
            return loan.conn
        if self.shared is not None:
            return self.shared.conn()
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = self._pool.take() or self._open()
            self._local.conn = c
        return c

    def release(self) -> None:
        """This thread is done with the server: its connection goes to the pool (or closes)."""
        if self.shared is not None:
            self.shared.release()
            return
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None and not self._pool.give(c):
            c.close()

    def fence(self, host_id: str) -> None:
        """On a shared store, refuse every later write once `host_id`'s lease is gone
        (`PgStore.fence`); a SQLite file needs no fence."""
        if self.shared is not None:
            self.shared.fence(host_id)

    def warm(self, count: int) -> int:
        """Open connections ahead of need until `count` are idle (see `host.store.pool`)."""
        if self.shared is not None:
            return self.shared.warm(count)
        return self._pool.fill(count, self._open)

    def close_idle(self) -> None:
        """Close the pooled connections (their owner stops; threads keep their own)."""
        if self.shared is not None:
            self.shared.close_idle()
            return
        for idle in self._pool.drain():
            idle.close()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file off the call path (PASSIVE: never blocks)."""
        if self.shared is None:
            self.conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _open(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        # isolation_level=None: no implicit transactions; every write is an explicit BEGIN.
        # check_same_thread=False: an idle connection moves to the next thread through the
        # pool; it is only ever used by one thread at a time.
        c = sqlite3.connect(
            self.path, isolation_level=None, cached_statements=STATEMENT_CACHE, timeout=0,
            check_same_thread=False,
        )
        if fresh:
            os.chmod(self.path, 0o600)  # holds token hashes and user data
        c.row_factory = sqlite3.Row
        c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA foreign_keys=ON")
        # Automatic checkpoints would run inside a write's COMMIT and stall it for milliseconds;
        # the host checkpoints from its upkeep thread instead (`Database.checkpoint`). The cap
        # bounds the WAL if nobody does (a CLI-only process).
        c.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        c.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the schema, read now
        return c

    def close(self) -> None:
        """Close this thread's connection and the idle ones (other threads' close when their
        thread ends)."""
        if self.shared is not None:
            self.shared.close()
            return
        self.close_idle()
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def commits_here(self) -> int:
        """Write transactions this thread has committed so far (or may have: a shared store's
        failed COMMIT). A caller that runs several writes (a REST handler) compares it before
        and after a failure to know whether "nothing was written" holds."""
        return int(getattr(self._local, "commits", 0))

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One write transaction (BEGIN IMMEDIATE .. COMMIT, or the shared store's write lock);
        any exception rolls it all back."""
        if getattr(self._local, "loan", None) is not None:
            # Inside the lender's transaction (`lend`): it commits, or rolls back, all of it.
            yield self.conn()
            return
        c = self.conn()
        if c.in_transaction:
            # A server operation is one transaction; nesting would silently merge two.
            raise RuntimeError("nested server write on one thread")
        # The shared store's transaction yields the connection it began on: a fresh one when
        # this thread's was found broken at its BEGIN (`host.store.pg`), never `c`.
        unsure = False
        try:
            with (immediate(c, self._where, BUSY_TIMEOUT_MS) if self.shared is None
                  else self.shared.transaction()) as began:
                if self.shared is None and self._may_move:
                    refuse_if_moved(c, self.path)
                yield began
                # What fails from here is the COMMIT: SQLite's applied nothing, a shared store's
                # may have (its session ended before the answer): counted (`commits_here`).
                unsure = self.shared is not None
        except BaseException:
            if unsure:
                self._local.commits = self.commits_here() + 1
            raise
        self._local.commits = self.commits_here() + 1

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A consistent snapshot for a multi-statement read (deferred transaction)."""
        c = self.conn()
        if c.in_transaction:
            yield c
            return
        # PostgreSQL's default isolation takes a snapshot per statement; one per transaction
        # is what SQLite's deferred BEGIN gives.
        c.execute("BEGIN" if self.shared is None else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            yield c
        finally:
            if c.in_transaction:
                c.execute("COMMIT")

    @contextmanager
    def lend(self, c: sqlite3.Connection) -> Iterator[Loan]:
        """Run this thread's server operations on `c`, inside its owner's open write transaction
        on the same file (DESIGN rule 9's second branch: the gate's decision, quota unit, server
        write and outcome commit together; `host.gate.onetx`). Writes neither begin nor commit
        (the owner does both); their events wait in the `Loan` until the owner has committed,
        and are dropped if it rolls back. Rows read by name meanwhile (`sqlite3.Row`), as on
        this database's own connections; the owner's row factory is put back after."""
        if self.shared is not None or not c.in_transaction:
            raise RuntimeError("a server connection is lent only inside a SQLite transaction")
        if getattr(self._local, "loan", None) is not None:
            raise RuntimeError("nested loan of a connection to the server")
        loan = Loan(c)
        factory = c.row_factory
        c.row_factory = sqlite3.Row
        self._local.loan = loan
        try:
            yield loan
        finally:
            self._local.loan = None
            c.row_factory = factory

    def loan(self) -> Loan | None:
        """The loan this thread's server operations run under (`lend`), if any."""
        loan: Loan | None = getattr(self._local, "loan", None)
        return loan

    def _migrate_shared(self, migrating: bool) -> None:
        """A shared store's schema changes only at `stockade store migrate` (docs/SCALE.md)."""
        assert self.shared is not None
        version = 0
        if self.shared.has_table("schema_version"):
            row = self.conn().execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            version = int(row[0]) if row else 0
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: the server schema is at version {version}, newer than "
                             f"this Stockade ({SCHEMA_VERSION}); upgrade Stockade")
        if not migrating:
            raise StoreError(f"{self.path}: the server schema is at version {version}, this "
                             f"Stockade needs {SCHEMA_VERSION}; run `stockade store migrate`")
        self._migrate()

    def _migrate(self) -> None:
        dialect = "sqlite" if self.shared is None else "postgresql"
        with self.write() as c:
            c.execute(SERVER_VERSION_DDL)
            row = c.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this host "
                    f"({SCHEMA_VERSION}); upgrade stockade"
                )
            for i in range(version, SCHEMA_VERSION):
                for stmt in migration_statements(i, dialect):
                    c.execute(stmt)
                if i == 0:
                    c.executemany(
                        "INSERT INTO roles (name, privileged, description) VALUES (?, ?, ?)",
                        _ROLES_SEED,
                    )
            c.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would COMMIT our transaction). A
    trigger's body holds semicolons: pieces are joined until SQLite calls the text complete."""
    out: list[str] = []
    acc = ""
    for piece in script.split(";"):
        acc = f"{acc};{piece}" if acc else piece
        if sqlite3.complete_statement(acc + ";"):
            if acc.strip():
                out.append(acc.strip())
            acc = ""
    if acc.strip():
        out.append(acc.strip())
    return out


@dataclass
class Loan:
    """A connection lent to the server by its owner's transaction (`Database.lend`), and the
    events the server's writes on it queued, for the owner to emit once it has committed."""

    conn: sqlite3.Connection
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Tx:
    """One server operation in flight: its connection (inside BEGIN IMMEDIATE), its timestamp,
    and the events it will emit once COMMIT succeeds."""

    conn: sqlite3.Connection
    now: float
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        """Queue an event for after commit."""
        self.events.append((name, dict(payload)))
