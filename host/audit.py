"""The audit log: append-only, hash-chained records in `host.db`, and the anchor that pins its end.

Records. Each row is `(seq, ts, body, prev_hash, hash)`: `seq` counts from 1 with no gaps, `body`
is the canonical JSON of an `AuditRecord` (sorted keys, no spaces, ASCII only: every control
character, newline or non-ASCII character an app smuggles into a string is a JSON escape, so a
stored body is always one line and can never end one record and start another) and

    hash = sha256(bytes.fromhex(prev_hash) || f"{seq}\\n{ts!r}\\n" || body)

with `prev_hash` of record 1 = 64 zeros. Hashing seq and ts with the body means neither can be
changed alone. The chain is a plain sha256 chain so anyone holding a copy of `host.db` can check
it without a key.

What goes in a record is fixed by an allow-list (`AuditRecord`'s fields, each with a type and a
size cap). There is no free-form mapping field, so token bodies, secrets, setting values or call
arguments cannot be logged by accident: arguments are recorded as `args_digest`, the sha256 of
their canonical JSON (`digest_args`).

Verification (`verify()`) walks the chain and reports the first bad `seq`:
- an edited record (body, ts or seq changed without recomputing its hash): hash mismatch;
- a deleted or inserted record, or records swapped: gap in `seq` or `prev_hash` mismatch;
- an edit followed by recomputing every later hash (someone who knows the scheme): caught only
  by the anchor, for records at or before the anchored seq;
- truncation (the newest records deleted): a chain cut at its end is still a valid chain, so this
  needs a witness outside the table — the anchor.

The anchor. `HOME/audit.anchor` holds one line `stockade-audit-anchor/1 <seq> <hash> <mac>`, where
`mac = HMAC-SHA256(key, "stockade-audit-anchor/1 <seq> <hash>")` and the key is 32 random bytes in
`HOME/keys/audit-anchor.key` (0600, created with the log). It is rewritten atomically (temp file
+ rename) after record 1, after every record whose seq is a multiple of `ANCHOR_EVERY`, by
`write_anchor()` (the ledger calls it from `checkpoint()`, meant for a background thread) and on
`close()`. `verify()` then requires that the chain reaches the anchored seq and that the record
there has the anchored hash, and that the anchor exists once the chain is non-empty.

What the anchor detects: deleting any record at or before the anchored seq (including cutting
the chain back to before it); rewriting and re-hashing any record at or before it; swapping in
another database; deleting the anchor file (reported as "anchor missing"); forging an anchor
without the key.
What it does not: removing or rewriting records *after* the anchored seq — at most
`ANCHOR_EVERY - 1` records in a running host, or those since the last `write_anchor()`/`close()`;
an attacker who can read `HOME/keys/` (they can sign any anchor: the key protects against
someone with write access to `host.db` or the home's data files only, e.g. a restored backup or
a careless copy); rolling back both `host.db` and `audit.anchor` to an older consistent pair.
After a power loss (not a process crash), `synchronous=NORMAL` may lose the newest commits while
the anchor survives: `verify` then truthfully reports the records after the last durable one as
missing.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from host.clock import Clock
from host.quota import QuotaState
from host.store import Store, StoreError, ensure_schema, table_exists

SCHEMA_COMPONENT = "audit"
SCHEMA_VERSION = 1

GENESIS_HASH = "0" * 64
ANCHOR_MAGIC = "stockade-audit-anchor/1"
# Write the anchor every this many records. Guards the truncation window (at most K-1 newest
# records can be cut undetected in a running host) against the cost of a file rewrite per call.
ANCHOR_EVERY = 64

# Longest string stored in any field (characters). Guards the log against app-supplied text
# (a role name, a username echoed in a message) growing records without bound; longer free
# text (`message`, `detail`) is cut with a marker, longer identifiers are refused.
MAX_STR = 512
# Most rule names / quota states in one record: guards record size against a policy with
# thousands of matching rules.
MAX_RULES = 64
MAX_QUOTAS = 16

_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_TRUNCATE_FIELDS = frozenset({"message", "detail"})

DDL = (
    "CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, ts REAL NOT NULL,"
    " body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    # Append-only inside the host: any UPDATE or DELETE by host code is a bug and aborts. (Not a
    # defence against someone with raw file access, who can drop the trigger: that is what the
    # chain and the anchor are for.)
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
    # Allowed decisions still waiting for their outcome record (crash reconciliation) and what
    # they reserved (for refunds).
    "CREATE TABLE IF NOT EXISTS audit_intents(seq INTEGER PRIMARY KEY, op_id TEXT NOT NULL,"
    " ts REAL NOT NULL, app_id TEXT, install_id TEXT, action TEXT, write INTEGER NOT NULL,"
    " keys TEXT NOT NULL, seat INTEGER NOT NULL)",
)


class AuditError(RuntimeError):
    """The record was not written (invalid record, closed log, database failure)."""


@dataclass(frozen=True)
class AuditRecord:
    """Every field a record may hold. Anything else cannot be logged (see module docstring).

    `kind`: decision | outcome | lifecycle | supervisor | consent | policy | ... (lowercase word).
    Decision fields: allowed, code, message, rules, policy_rev, quota, args_digest, write.
    Outcome fields: ref_seq (the decision), ok, code (error code or "ok"), refunded, reconciled.
    """

    kind: str
    allowed: bool | None = None
    code: str | None = None
    message: str | None = None
    rules: tuple[str, ...] = ()
    policy_rev: str | None = None
    quota: tuple[QuotaState, ...] = ()
    app_id: str | None = None
    install_id: str | None = None
    action: str | None = None
    args_digest: str | None = None
    op_id: str | None = None
    write: bool | None = None
    ref_seq: int | None = None
    ok: bool | None = None
    refunded: bool | None = None
    reconciled: bool | None = None
    actor: str | None = None
    event: str | None = None
    version: str | None = None
    generation: int | None = None
    detail: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Build a record from a mapping, refusing any field not on the allow-list."""
        unknown = sorted(set(data) - _FIELD_NAMES)
        if unknown:
            raise AuditError(f"audit record field(s) not allowed: {', '.join(unknown[:5])}")
        d = dict(data)
        if "rules" in d and isinstance(d["rules"], list):
            d["rules"] = tuple(d["rules"])
        if "quota" in d and isinstance(d["quota"], (list, tuple)):
            d["quota"] = tuple(_quota_from(q) for q in d["quota"])
        rec = cls(**d)
        rec.body()  # validate now
        return rec

    def body(self) -> str:
        """Canonical JSON of the set fields (validated; raises AuditError)."""
        return canonical_json(_validated(self))


_FIELD_NAMES = frozenset(f.name for f in fields(AuditRecord))


def _quota_from(q: Any) -> QuotaState:
    if isinstance(q, QuotaState):
        return q
    if not isinstance(q, Mapping) or set(q) - {"key", "used", "limit", "window_s", "next_free_at"}:
        raise AuditError("quota entries must be {key, used, limit, window_s, next_free_at}")
    # Types are checked when the record is validated (`_validated`), not here.
    return QuotaState(q.get("key"), q.get("used"), q.get("limit"),  # type: ignore[arg-type]
                      q.get("window_s"), q.get("next_free_at"))  # type: ignore[arg-type]


def _cap_str(name: str, v: object) -> str:
    if not isinstance(v, str):
        raise AuditError(f"audit field {name} must be a string")
    if len(v) > MAX_STR:
        if name in _TRUNCATE_FIELDS:
            return v[: MAX_STR - 1] + "…"
        raise AuditError(f"audit field {name} longer than {MAX_STR} characters")
    return v


def _check_int(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise AuditError(f"audit field {name} must be a non-negative int")
    return v


def _check_num(name: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise AuditError(f"audit field {name} must be a finite number")
    return float(v)


def _check_bool(name: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise AuditError(f"audit field {name} must be a bool")
    return v


def _check_kind(name: str, v: object) -> str:
    if not isinstance(v, str) or not _KIND_RE.fullmatch(v):
        raise AuditError("audit kind must be a lowercase word of at most 32 characters")
    return v


def _check_digest(name: str, v: object) -> str:
    if not isinstance(v, str) or not _HEX64_RE.fullmatch(v):
        raise AuditError("args_digest must be 64 lowercase hex characters (use digest_args)")
    return v


def _check_rules(name: str, v: object) -> list[str] | None:
    if not isinstance(v, tuple) or len(v) > MAX_RULES:
        raise AuditError(f"rules must be a tuple of at most {MAX_RULES} names")
    return [_cap_str("rules", r) for r in v] if v else None


def quota_json(states: object) -> list[dict[str, object]] | None:
    """Validated JSON form of a record's quota states (None when there are none)."""
    if not isinstance(states, tuple) or len(states) > MAX_QUOTAS:
        raise AuditError(f"quota must be a tuple of at most {MAX_QUOTAS} states")
    qs: list[dict[str, object]] = []
    for q in states:
        if not isinstance(q, QuotaState):
            raise AuditError("quota entries must be QuotaState")
        qs.append({
            "key": _cap_str("quota.key", q.key),
            "used": _check_int("quota.used", q.used),
            "limit": _check_int("quota.limit", q.limit),
            "window_s": _check_num("quota.window_s", q.window_s),
            "next_free_at": None if q.next_free_at is None
            else _check_num("quota.next_free_at", q.next_free_at),
        })
    return qs or None


# One checker per allowed field: the allow-list of names *and* value types. Each returns the
# JSON value to store (None: leave the field out).
_CHECKERS: dict[str, Callable[[str, Any], object]] = {
    "kind": _check_kind, "args_digest": _check_digest, "rules": _check_rules,
    "quota": lambda _n, v: quota_json(v),
}
for _f in fields(AuditRecord):
    if _f.name not in _CHECKERS:
        _CHECKERS[_f.name] = {"str | None": _cap_str, "bool | None": _check_bool,
                              "int | None": _check_int}[str(_f.type)]


def _validated(rec: AuditRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, v in vars(rec).items():
        if v is None:
            continue
        j = _CHECKERS[name](name, v)
        if j is not None:
            out[name] = j
    if "kind" not in out:
        raise AuditError("audit record needs a kind")
    return out


def validated_body(rec: AuditRecord) -> dict[str, object]:
    """The record as a validated JSON-able dict (callers may override checked fields)."""
    return _validated(rec)


def check_field(name: str, v: object) -> str:
    """A string for field `name`: free text is capped, identifiers over MAX_STR are refused."""
    return _cap_str(name, v)


def cap_text(v: str) -> str:
    """Free text for a record's `message`: capped at MAX_STR with a marker."""
    return _cap_str("message", v)


def canonical_json(obj: object) -> str:
    """Sorted keys, no whitespace, ASCII only (so control characters are always escaped)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def digest_args(args: Mapping[str, Any]) -> str:
    """sha256 of the arguments' canonical JSON: records prove *which* arguments, never hold them."""
    return hashlib.sha256(canonical_json(dict(args)).encode()).hexdigest()


def chain_hash(prev_hash: str, seq: int, ts: float, body: str) -> str:
    """hash = sha256(prev_hash bytes || "seq\\nts\\n" || body) — see the module docstring."""
    h = hashlib.sha256(bytes.fromhex(prev_hash))
    h.update(f"{seq}\n{ts!r}\n".encode())
    h.update(body.encode())
    return h.hexdigest()


def escape_text(s: str) -> str:
    """Make app-supplied text safe for one line of human output.

    Escapes control characters (newline, CR, ESC...), Unicode line/paragraph separators and
    format characters (bidi overrides that reorder what the operator reads) as \\uXXXX, and
    backslashes, so an app cannot forge a line or hide text in `audit tail`.
    """
    out: list[str] = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """A stored record: its chain position and its validated body."""

    seq: int
    ts: float
    body: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "record": self.body,
                "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """`ok` iff the whole chain and the anchor check out; else the first bad seq and why."""

    ok: bool
    records: int
    last_seq: int
    first_bad_seq: int | None = None
    problem: str | None = None
    anchor: Anchor | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "records": self.records, "last_seq": self.last_seq,
            "first_bad_seq": self.first_bad_seq, "problem": self.problem,
            "anchor": None if self.anchor is None
            else {"seq": self.anchor.seq, "hash": self.anchor.hash},
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Intent:
    """An allowed decision whose outcome was never recorded (the host crashed mid-call)."""

    seq: int
    op_id: str
    ts: float
    app_id: str | None
    install_id: str | None
    action: str | None
    write: bool


def append_in(conn: sqlite3.Connection, body: str, ts: float) -> int:
    """Append one validated body inside the caller's BEGIN IMMEDIATE transaction."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (1, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))
    conn.execute(
        "INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)",
        (seq, ts, body, prev, chain_hash(prev, seq, ts, body)),
    )
    return seq


def _load_or_create_key(path: Path, create: bool) -> bytes | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return path.read_bytes()
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        return path.read_bytes()
    if len(data) < 32:
        raise AuditError(f"{path}: audit anchor key is damaged")
    return data


def _anchor_mac(key: bytes, seq: int, h: str) -> str:
    return hmac.new(key, f"{ANCHOR_MAGIC} {seq} {h}".encode(), hashlib.sha256).hexdigest()


class AuditLog:
    """Append-only hash-chained audit log over `host.db` (see the module docstring)."""

    def __init__(self, db: Path | str | Store, clock: Clock, *, anchor_path: Path | None = None,
                 key_path: Path | None = None, anchor_every: int = ANCHOR_EVERY,
                 readonly: bool = False) -> None:
        self.store = db if isinstance(db, Store) else Store(db, readonly=readonly)
        self.clock = clock
        root = self.store.path.parent
        self.anchor_path = anchor_path or root / "audit.anchor"
        self.key_path = key_path or root / "keys" / "audit-anchor.key"
        self.anchor_every = max(1, anchor_every)
        self.readonly = readonly or self.store.readonly
        self._closed = False
        if not self.readonly:
            ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)
        self._key = _load_or_create_key(self.key_path, create=not self.readonly)

    # -- writing --------------------------------------------------------------------------

    def append(self, record: AuditRecord | Mapping[str, Any]) -> int:
        """Append durably; returns the seq. Raises AuditError if the record was not written."""
        rec = record if isinstance(record, AuditRecord) else AuditRecord.from_dict(record)
        body = rec.body()
        self._check_open()
        try:
            with self.store.transaction() as c:
                seq = append_in(c, body, float(self.clock.now()))
        except sqlite3.Error as e:
            raise AuditError(f"audit append failed: {e}") from e
        self.after_append(seq)
        return seq

    def after_append(self, seq: int) -> None:
        """Anchor the chain after record 1 and every `anchor_every` records."""
        if seq == 1 or seq % self.anchor_every == 0:
            self.write_anchor()

    def write_anchor(self) -> Anchor | None:
        """Pin the current chain head in the anchor file (atomic rename). None if empty."""
        if self._key is None or self.readonly:
            return None
        row = self.store.conn().execute(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        seq, h = int(row[0]), str(row[1])
        current = self.read_anchor()
        if current is not None and current.seq >= seq:
            return current  # another process anchored further already; never move backwards
        line = f"{ANCHOR_MAGIC} {seq} {h} {_anchor_mac(self._key, seq, h)}\n"
        tmp = self.anchor_path.with_name(
            f".{self.anchor_path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.anchor_path)
        return Anchor(seq, h)

    def read_anchor(self) -> Anchor | None:
        """The anchor, or None if there is none. Raises AuditError if it is forged or damaged."""
        try:
            text = self.anchor_path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise AuditError(f"anchor unreadable: {e}") from e
        parts = text.strip().split(" ")
        if len(parts) != 4 or parts[0] != ANCHOR_MAGIC or not parts[1].isdigit():
            raise AuditError("anchor damaged (bad format)")
        seq, h, mac = int(parts[1]), parts[2], parts[3]
        if self._key is None:
            raise AuditError(f"anchor present but its key {self.key_path} is missing")
        if not hmac.compare_digest(mac, _anchor_mac(self._key, seq, h)):
            raise AuditError("anchor signature does not match (forged or wrong key)")
        return Anchor(seq, h)

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("audit log is closed")
        if self.readonly:
            raise AuditError("audit log opened read-only")

    # -- reading --------------------------------------------------------------------------

    def _has_table(self) -> bool:
        return table_exists(self.store.conn(), "audit")

    def tail(self, n: int = 20) -> list[AuditEntry]:
        """The newest `n` records, oldest first."""
        if n <= 0 or not self._has_table():
            return []
        rows = self.store.conn().execute(
            "SELECT seq, ts, body, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT ?", (n,)
        ).fetchall()
        return [_entry(r) for r in reversed(rows)]

    def show(self, seq: int) -> AuditEntry | None:
        """One record by seq, or None."""
        if not self._has_table():
            return None
        r = self.store.conn().execute(
            "SELECT seq, ts, body, prev_hash, hash FROM audit WHERE seq=?", (seq,)).fetchone()
        return None if r is None else _entry(r)

    def head(self) -> tuple[int, str]:
        """(last seq, its hash); (0, GENESIS_HASH) when empty."""
        if not self._has_table():
            return 0, GENESIS_HASH
        r = self.store.conn().execute(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS_HASH) if r is None else (int(r[0]), str(r[1]))

    def pending_intents(self) -> list[Intent]:
        """Allowed decisions with no outcome record yet, oldest first."""
        if not table_exists(self.store.conn(), "audit_intents"):
            return []
        rows = self.store.conn().execute(
            "SELECT seq, op_id, ts, app_id, install_id, action, write FROM audit_intents"
            " ORDER BY seq").fetchall()
        return [Intent(int(r[0]), str(r[1]), float(r[2]), r[3], r[4], r[5], bool(r[6]))
                for r in rows]

    def verify(self) -> VerifyResult:
        """Walk the whole chain and check the anchor; report the first bad record."""
        try:
            anchor = self.read_anchor()
            anchor_problem = None
        except AuditError as e:
            anchor, anchor_problem = None, str(e)
        conn = self.store.conn()
        if not self._has_table():
            rows: Sequence[tuple[Any, ...]] = []
        else:
            rows = conn.execute(
                "SELECT seq, ts, body, prev_hash, hash FROM audit ORDER BY seq")  # type: ignore[assignment]
        prev, expected, count = GENESIS_HASH, 1, 0
        anchored_hash: str | None = None

        def bad(seq: int, problem: str) -> VerifyResult:
            return VerifyResult(False, count, expected - 1, seq, problem, anchor)

        for seq, ts, body, prev_hash, h in rows:
            if seq != expected:
                if seq > expected:
                    return bad(expected, f"record {expected} is missing (next stored is {seq})")
                return bad(seq, f"unexpected seq {seq}")
            if prev_hash != prev:
                return bad(seq, "prev_hash does not match the previous record's hash "
                                "(a record was inserted, deleted or moved)")
            if not isinstance(ts, float) or not isinstance(body, str) or \
                    chain_hash(prev_hash, seq, ts, body) != h:
                return bad(seq, "hash does not match the record's content (record edited)")
            try:
                parsed = json.loads(body)
                AuditRecord.from_dict(parsed)
            except (ValueError, TypeError, AuditError) as e:
                return bad(seq, f"body is not a valid record: {e}")
            if anchor is not None and seq == anchor.seq:
                anchored_hash = h
            prev, expected, count = h, expected + 1, count + 1
        last = expected - 1
        if anchor_problem is not None:
            return VerifyResult(False, count, last, last + 1 if last else None,
                                anchor_problem, None)
        if anchor is None:
            if last > 0 and self._key is not None:
                return VerifyResult(False, count, last, None,
                                    "anchor missing: truncation cannot be ruled out "
                                    f"({self.anchor_path} was deleted or never written)", None)
            return VerifyResult(True, count, last, None, None, None,
                                ("no anchor: truncation not checked",) if last else ())
        if anchor.seq > last:
            return VerifyResult(False, count, last, last + 1,
                                f"records {last + 1}..{anchor.seq} are missing: the anchor "
                                f"pins seq {anchor.seq} (truncated, or lost in a power "
                                "failure)", anchor)
        if anchored_hash != anchor.hash:
            return VerifyResult(False, count, last, anchor.seq,
                                "record differs from the anchored hash (chain rewritten)",
                                anchor)
        return VerifyResult(True, count, last, None, None, anchor,
                            (f"records after seq {anchor.seq} are not yet anchored",)
                            if last > anchor.seq else ())

    def close(self) -> None:
        """Anchor the head and close this thread's connection. Appends then raise."""
        if self._closed:
            return
        try:
            if not self.readonly:
                self.write_anchor()
        finally:
            self._closed = True
            self.store.close()


def _entry(r: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(int(r[0]), float(r[1]), json.loads(r[2]), str(r[3]), str(r[4]))


def open_readonly(db_path: Path, clock: Clock) -> AuditLog:
    """Open an existing store for `verify`/`tail`/`show` without creating anything."""
    if not db_path.exists():
        raise StoreError(f"no store at {db_path}")
    return AuditLog(Store(db_path, readonly=True), clock, readonly=True)


__all__ = [
    "ANCHOR_EVERY", "Anchor", "AuditEntry", "AuditError", "AuditLog", "AuditRecord", "Intent",
    "VerifyResult", "append_in", "canonical_json", "chain_hash", "digest_args", "escape_text",
    "open_readonly",
]
