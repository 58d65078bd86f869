"""The embedded server's schema: its versioned migrations, each in SQLite's spelling and, where
PostgreSQL's differs, in PostgreSQL's (docs/SCALE.md), and the roles a new server starts with.

`host.server.db.Database` applies them when it opens a store (`_migrate`); `host.server.stray`
builds a stand-in server's tables from them, and `host/migrate.py` reports their version.
"""
from __future__ import annotations

import sqlite3

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

# Version 9: admin service tokens (`serve --mint-token`) expire (`expires_at`, NULL: never, as
# personal tokens and sign-ins stay) and are a kind of their own, no longer counted as the user's
# personal tokens (`host/server/personal_tokens.py`). Guards: an admin credential valid for good.
# The tokens minted before (kind 'personal', named 'service') become service tokens that never
# expire: a running integration is not cut off by an upgrade, and `--list-tokens` shows them as
# "never" until the operator rotates them (`--mint-token NAME --replace`). A token the user
# itself named "service" cannot be told from them and becomes one too (rotated with them).
_SCHEMA_V9 = """
ALTER TABLE personal_tokens ADD COLUMN expires_at REAL;
UPDATE personal_tokens SET kind = 'service' WHERE kind = 'personal' AND name = 'service'
"""

# The server's own schema version (a table of its own: it predates the host's `schema_meta`).
SERVER_VERSION_DDL = ("CREATE TABLE IF NOT EXISTS schema_version ("
                      "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")

# Ordered migrations: index i takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5,
                               _SCHEMA_V6, _SCHEMA_V7, _SCHEMA_V8, _SCHEMA_V9)
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

# Version 9 on PostgreSQL: `host.store.dialect` widens REAL only in CREATE TABLE, and a 32-bit
# REAL holds a 2026 timestamp to the nearest 128 s: a token would live up to a minute past its
# expiry, or end that much early.
_SCHEMA_V9_PG = (
    "ALTER TABLE personal_tokens ADD COLUMN expires_at DOUBLE PRECISION",
    "UPDATE personal_tokens SET kind = 'service' WHERE kind = 'personal' AND name = 'service'",
)


def migration_statements(version: int, dialect: str) -> list[str]:
    """The statements that take the schema from `version` to `version + 1` in `dialect`."""
    if dialect == "postgresql" and version == 3:
        return list(_SCHEMA_V4_PG)
    if dialect == "postgresql" and version == 4:
        return list(_SCHEMA_V5_PG)
    if dialect == "postgresql" and version == 8:
        return list(_SCHEMA_V9_PG)
    return _statements(MIGRATIONS[version])


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
