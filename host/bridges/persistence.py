"""Per-install key-value storage for apps (`persistence.*` bridge actions), in `host.db`.

Isolation: every method takes the `install_id` the *host* knows from the channel the request
came in on; no argument an app sends can name another install. Every query is keyed by it, so
an app can only ever read, find or delete its own records. `remove_all` wipes an install's
data at uninstall.

An association ties a record to a thing in the chat (a room, a user, a visitor, ...) so an app
can `find` its records about it: an `Association(kind, id)` pair; a record holds at most one.
Values are JSON data (objects, arrays, strings, numbers, booleans, null), stored as canonical
JSON and capped (see the constants).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from host.errors import GateError
from host.store import Conn, Step, Store, StoreTarget, ensure_schema, open_store

# A record's rules (key, association, value and its canonical size) are one pure copy, shared
# with the app-author harness; re-exported here for this module's readers.
from policies.storerules import ASSOCIATION_KINDS as ASSOCIATION_KINDS
from policies.storerules import MAX_DEPTH as MAX_DEPTH
from policies.storerules import MAX_KEY_LEN as MAX_KEY_LEN
from policies.storerules import MAX_VALUE_BYTES as MAX_VALUE_BYTES
from policies.storerules import Association as Association
from policies.storerules import PersistenceError as PersistenceError
from policies.storerules import check_assoc as _check_assoc
from policies.storerules import check_key as _check_key
from policies.storerules import encode_value as encode_value
from sandbox.wirecaps import MAX_FRAME_BYTES

SCHEMA_COMPONENT = "persistence"
SCHEMA_VERSION = 2

# Most keys per install. Guards the database and `find` against an app creating records
# without bound (one per visitor message, say).
MAX_KEYS_PER_INSTALL = 10_000
# Most bytes per install over all records: each value, key and association (kind and id) as
# stored. Guards the disk: 10k keys × 64 KiB would be 640 MiB (and keys and association ids,
# up to 1 KiB each, counted only their values until schema version 2: ~20 MiB more).
MAX_BYTES_PER_INSTALL = 32 * 1024 * 1024
# A stored record's bytes in SQL, as `_record_bytes` counts them (a text's size in bytes:
# `host.store.dialect` spells it for PostgreSQL).
_RECORD_BYTES = ("length(CAST(value AS BLOB)) + length(CAST(key AS BLOB))"
                 " + coalesce(length(CAST(assoc_kind AS BLOB)), 0)"
                 " + coalesce(length(CAST(assoc_id AS BLOB)), 0)")
# Most records one `find` returns. Guards the reply frame size.
MAX_FIND = 1000
# Most bytes of records one `find` replies with: their stored values (canonical JSON, as the
# reply spells them), each key counted at 6 bytes a byte (a control character's escape) and
# FIND_RECORD_BYTES of framing a record; the rest of the frame is room for the reply's
# envelope. Guards the host's CPU: a reply that could not cross in one frame is refused from
# the sizes SQL reports, before any value is read or parsed (100 values of 64 KiB were 6.4 MB
# parsed and encoded, ~160 ms of the host's CPU, only to be refused as too large).
FIND_REPLY_BYTES = MAX_FRAME_BYTES - 64 * 1024
FIND_RECORD_BYTES = 32

DDL = (
    "CREATE TABLE IF NOT EXISTS persist(install_id TEXT NOT NULL, key TEXT NOT NULL,"
    " value TEXT NOT NULL, assoc_kind TEXT, assoc_id TEXT, PRIMARY KEY(install_id, key))"
    " WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS persist_assoc ON persist(install_id, assoc_kind, assoc_id)",
    # Running totals so the caps cost one row read, not a scan of the install's records.
    "CREATE TABLE IF NOT EXISTS persist_usage(install_id TEXT PRIMARY KEY,"
    " keys INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID",
    # Version 2: `bytes` counts keys and associations too; counted again from the records.
    Step(2, "UPDATE persist_usage SET bytes = coalesce((SELECT sum("  # noqa: S608 - constant
            + _RECORD_BYTES + ") FROM persist"
            " WHERE persist.install_id = persist_usage.install_id), 0)"),
)


Installed = Callable[[Conn, str], bool]


class PersistenceStore:
    """Install-scoped records over `host.db`.

    `installed` (the host's: whether the install's row is there, asked on the write's own
    connection) is checked inside every `put`'s transaction: an uninstall deletes the install
    and its rows in one transaction (`remove_all_in`), writes are serialized (SQLite's write
    lock, PostgreSQL's `WRITE_LOCK`), so a put either commits before it, and is deleted with
    the rest, or after it, and is refused. A security boundary: without it an app writing while
    it is uninstalled leaves rows keyed to an install id never used again."""

    def __init__(self, db: StoreTarget, installed: Installed | None = None) -> None:
        self.store = db if isinstance(db, Store) else open_store(db)
        self._installed = installed
        ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)

    def put(self, install_id: str, key: str, value: Any,
            association: Association | Mapping[str, str] | None = None) -> None:
        """Create or replace `key` for this install. Raises PersistenceError past a cap, and
        `permission_denied` when the install is gone (see the class)."""
        with self.store.transaction() as c:
            if self._installed is not None and not self._installed(c, install_id):
                raise GateError("permission_denied",
                                "the app was uninstalled: nothing was stored")
            put_in(c, install_id, key, value, association)

    def get(self, install_id: str, key: str) -> Any:
        """The value, or None when the key does not exist."""
        return _value_in(self.store.conn(), install_id, key)

    def delete(self, install_id: str, key: str) -> bool:
        """Remove one key. True if it existed."""
        with self.store.transaction() as c:
            return delete_in(c, install_id, key)

    def find(self, install_id: str, association: Association | Mapping[str, str],
             limit: int = 100) -> list[tuple[str, Any]]:
        """This install's records tied to `association`, as (key, value), by key: the first
        `limit` of them. Raises PersistenceError (the app's `invalid_argument`) when those
        records outgrow one reply (`FIND_REPLY_BYTES`), decided from the sizes alone."""
        return [(k, json.loads(v)) for k, v in self.find_raw(install_id, association, limit)]

    def find_raw(self, install_id: str, association: Association | Mapping[str, str],
                 limit: int = 100) -> list[tuple[str, str]]:
        """`find`, each value as the JSON text stored (what an app's reply carries as it is:
        `host.supervise.served`). Guards the host's CPU: parsing a find that fits (up to
        `FIND_REPLY_BYTES` of values, ~480,000 JSON values) and encoding it again cost ~23 ms a
        call, a quarter of the host's core at the default quota; the text is the host's own,
        written by `put_in`'s canonical encoder."""
        association = _check_assoc(association)
        n = max(1, min(int(limit), MAX_FIND))
        where = (install_id, association.kind, association.id)
        c = self.store.conn()
        # Sizes first, row by row: the first record past the budget ends the read (the cursor
        # closed, so no statement is left holding SQLite's read snapshot).
        cur = c.execute(
            "SELECT length(CAST(key AS BLOB)), length(CAST(value AS BLOB)) FROM persist"
            " WHERE install_id=? AND assoc_kind=? AND assoc_id=? ORDER BY key LIMIT ?",
            (*where, n))
        try:
            count = _fits(int(k) * 6 + int(v) + FIND_RECORD_BYTES for k, v in cur)
        finally:
            cur.close()
        if not count:
            return []
        rows = c.execute(
            "SELECT key, value FROM persist WHERE install_id=? AND assoc_kind=? AND assoc_id=?"
            " ORDER BY key LIMIT ?", (*where, count)).fetchall()
        # A put between the two reads may have grown a value: counted again, before parsing.
        _fits(len(str(k).encode()) * 6 + len(str(v).encode()) + FIND_RECORD_BYTES
              for k, v in rows)
        return [(str(k), str(v)) for k, v in rows]

    def keys(self, install_id: str) -> Sequence[str]:
        """Every key of this install (operator views, tests)."""
        return [str(r[0]) for r in self.store.conn().execute(
            "SELECT key FROM persist WHERE install_id=? ORDER BY key", (install_id,))]

    def remove_all(self, install_id: str) -> int:
        """Delete every record of an install (uninstall). Returns how many were removed."""
        with self.store.transaction() as c:
            return remove_all_in(c, install_id)

    def close(self) -> None:
        self.store.close()


def _fits(sizes: Iterable[int]) -> int:
    """How many records a `find` reply of these sizes holds; raises once their running total
    passes `FIND_REPLY_BYTES`."""
    total = count = 0
    for size in sizes:
        total += size
        count += 1
        if total > FIND_REPLY_BYTES:
            raise PersistenceError(
                f"the records tied to this association hold more than {FIND_REPLY_BYTES} bytes,"
                " more than one reply carries: keep fewer or smaller records under one"
                " association, and read large ones by key with get")
    return count


def remove_all(db_path: StoreTarget, install_id: str) -> int:
    """Delete every record of `install_id` in the store at `db_path` (uninstall seam)."""
    store = PersistenceStore(db_path)
    try:
        return store.remove_all(install_id)
    finally:
        store.close()


def remove_all_in(c: Conn, install_id: str) -> int:
    """`PersistenceStore.remove_all` inside the caller's transaction on the same store (the
    uninstall's: the install and its rows go in one commit, `InstallStore.remove(also=...)`)."""
    n = len(c.execute("DELETE FROM persist WHERE install_id=? RETURNING key",
                      (install_id,)).fetchall())
    c.execute("DELETE FROM persist_usage WHERE install_id=?", (install_id,))
    return n


def put_in(c: Conn, install_id: str, key: str, value: Any,
           association: Association | Mapping[str, str] | None = None) -> None:
    """`PersistenceStore.put` inside the caller's transaction on the same store (the gate's
    one-transaction write: the decision, the put and its outcome commit together; that
    admission checks no install change committed since the decision, so a put after an
    uninstall is decided again and refused)."""
    _check_key(key)
    if association is not None:
        association = _check_assoc(association)
    text = encode_value(value)
    kind = association.kind if association else None
    aid = association.id if association else None
    size = _record_bytes(key, text, kind, aid)
    old = c.execute(f"SELECT {_RECORD_BYTES} FROM persist"  # noqa: S608 - a constant
                    " WHERE install_id=? AND key=?", (install_id, key)).fetchone()
    u = c.execute("SELECT keys, bytes FROM persist_usage WHERE install_id=?",
                  (install_id,)).fetchone()
    keys, total = (0, 0) if u is None else (int(u[0]), int(u[1]))
    if old is None:
        keys += 1
    total += size - (0 if old is None else int(old[0]))
    if keys > MAX_KEYS_PER_INSTALL:
        raise PersistenceError(f"install has {MAX_KEYS_PER_INSTALL} keys already")
    if total > MAX_BYTES_PER_INSTALL:
        raise PersistenceError(f"install storage would exceed {MAX_BYTES_PER_INSTALL} bytes")
    c.execute(
        "INSERT INTO persist(install_id, key, value, assoc_kind, assoc_id)"
        " VALUES(?, ?, ?, ?, ?) ON CONFLICT(install_id, key) DO UPDATE SET"
        " value=excluded.value, assoc_kind=excluded.assoc_kind,"
        " assoc_id=excluded.assoc_id", (install_id, key, text, kind, aid))
    c.execute(
        "INSERT INTO persist_usage(install_id, keys, bytes) VALUES(?, ?, ?)"
        " ON CONFLICT(install_id) DO UPDATE SET keys=excluded.keys,"
        " bytes=excluded.bytes", (install_id, keys, total))


def delete_in(c: Conn, install_id: str, key: str) -> bool:
    """`PersistenceStore.delete` inside the caller's transaction on the same store."""
    _check_key(key)
    old = c.execute(f"SELECT {_RECORD_BYTES} FROM persist"  # noqa: S608 - a constant
                    " WHERE install_id=? AND key=?", (install_id, key)).fetchone()
    if old is None:
        return False
    c.execute("DELETE FROM persist WHERE install_id=? AND key=?", (install_id, key))
    c.execute("UPDATE persist_usage SET keys=keys-1, bytes=bytes-? WHERE install_id=?",
              (int(old[0]), install_id))
    return True


def _record_bytes(key: str, text: str, kind: str | None, aid: str | None) -> int:
    """A record's bytes against the install's cap: its value, key and association."""
    return sum(len(part.encode()) for part in (text, key, kind or "", aid or ""))


class _Caller(Protocol):
    """Whose records (the gate's session: the install the host knows from the channel)."""

    @property
    def install_id(self) -> str: ...


StoreCall = Callable[[Conn, _Caller, dict[str, Any]], Any]


def _value_in(c: Conn, install_id: str, key: str) -> Any:
    _check_key(key)
    r = c.execute("SELECT value FROM persist WHERE install_id=? AND key=?",
                  (install_id, key)).fetchone()
    return None if r is None else json.loads(r[0])


def missing(key: object) -> GateError:
    """What an app's `get` of a key it never stored raises (`not_found`: refunded)."""
    return GateError("not_found", f"no stored value under key {str(key)[:80]!r}")


def get_in(c: Conn, install_id: str, key: str) -> Any:
    """The app's `persistence.get` inside the caller's transaction: the value, or `missing`."""
    value = _value_in(c, install_id, key)
    if value is None:
        raise missing(key)
    return value


def gate_store_calls() -> dict[str, StoreCall]:
    """The persistence calls the gate runs inside its own transaction (`Gate.store_calls`):
    this data lives in the ledger's store (`Home.host_store`, opened by both). A write commits
    with its decision and outcome; so does a `get` under a quota, its refusal (a missing key)
    recorded and refunded in the same transaction."""
    return {
        "persistence.put": lambda c, s, a: put_in(c, s.install_id, a["key"], a["value"],
                                                  a.get("association")),
        "persistence.delete": lambda c, s, a: delete_in(c, s.install_id, a["key"]),
        "persistence.get": lambda c, s, a: get_in(c, s.install_id, a["key"]),
    }
