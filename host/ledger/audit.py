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
arguments cannot be logged by accident: arguments are recorded as `args_digest`, an HMAC of
their canonical JSON's sha256 (`digest_args`) under this host's key (`argsdigest.py`).

Verification (`verify()`, the walk in `host/ledger/verify.py`) reports the first bad `seq`:
- an edited record (body, ts or seq changed without recomputing its hash): hash mismatch;
- a deleted or inserted record, or records swapped: gap in `seq` or `prev_hash` mismatch;
- an edit followed by recomputing every later hash (someone who knows the scheme): caught only
  by the anchor, for records at or before the anchored seq;
- truncation (the newest records deleted): a chain cut at its end is still a valid chain, so this
  needs a witness outside the table — the anchor.

The anchor. `HOME/audit.anchor` holds the chain's head signed with a key of this host's own
(`HOME/keys/audit-anchor.key`; the file's format: `host/ledger/anchor.py`). It is rewritten
after record 1, after every record whose seq is a multiple of `ANCHOR_EVERY`, by
`write_anchor()` (the ledger calls it from `checkpoint()`, meant for a background thread) and on
`close()`. `verify()` then requires that the chain reaches the anchored seq and that the record
there has the anchored hash, and that the anchor exists once the chain is non-empty.

The anchor only ever moves over records verified from the anchor onward: the head it is moved to
must descend from the anchored record through records this process verified or wrote itself onto
verified ones (`host/ledger/trusted.py`; `verify_to_head` walks only the others, from the anchor).
An anchoring that finds the chain rewritten, cut, or (with no anchor) not written by this process
from its first record moves the anchor at most to the newest record this process wrote or verified
(`cut_under`), so no process — a refused `serve`, an operator command, a host whose `host.db` is
rewritten while it serves — re-signs a forged chain. An operator record is not appended onto a
chain that does not verify from the anchor (`verify_from_anchor`), as `serve` refuses one.

The anchor never moves backwards: its writers (a host's upkeep thread, an operator command's
close, any thread) take turns on a lock file beside it (`anchor_lock`) and read it again in
their turn, so a writer held up before its rename cannot put an older head back over a newer
one (whose records could then be cut unnoticed).

What the anchor detects: deleting any record at or before the anchored seq (including cutting
the chain back to before it); rewriting and re-hashing any record at or before it; swapping in
another database; deleting the anchor file, with or without its key (reported as "anchor
missing"); forging an anchor without the key.
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

import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from host.clock import Clock
from host.ledger import auditrows, chainhead
from host.ledger.anchor import Anchor, load_or_create_key, read_anchor, write_anchor_file
from host.ledger.chainhead import Recording, Run
from host.ledger.entry import AuditEntry, entry_from_row
from host.ledger.records import (
    AuditError,
    AuditRecord,
    canonical_json,
    digest_args,
    escape_text,
    is_hex64,
)
from host.ledger.trusted import TrustedHead
from host.ledger.verify import (
    GENESIS_HASH,
    PROGRESS_EVERY,
    Progress,
    VerifyResult,
    chain_hash,
    counted,
    cut_under,
    verify_to_head,
    walk,
)
from host.store import (
    DB_ERRORS,
    AppendOnly,
    Conn,
    SqliteStore,
    Step,
    Store,
    StoreError,
    StoreTarget,
    ensure_schema,
    open_store,
    table_exists,
)

log = logging.getLogger("stockade.audit")

SCHEMA_COMPONENT = "audit"
SCHEMA_VERSION = 2

# Write the anchor every this many records. Guards the truncation window (at most K-1 newest
# records can be cut undetected in a running host) against the cost of a file rewrite per call.
ANCHOR_EVERY = 64

# How long an anchoring waits for another writer's turn on the anchor (s). Guards the upkeep
# thread (which also beats a shared store's lease) and a call's backstop anchoring against a
# holder that stopped (an operator command suspended mid-anchoring): past it the anchoring is
# skipped, logged once; the anchor lags a round, it never moves without the turn.
ANCHOR_LOCK_WAIT_S = 1.0
# The waiter's first sleep and their cap (s): a turn is a read, a short walk and a rename.
ANCHOR_POLL_S, ANCHOR_POLL_MAX_S = 0.5e-3, 20e-3


DDL = (
    "CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, ts REAL NOT NULL,"
    " body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    # Append-only inside the host: any UPDATE or DELETE by host code is a bug and aborts. (Not a
    # defence against someone with raw file access, who can drop the trigger: that is what the
    # chain and the anchor are for.)
    AppendOnly("audit", "audit log is append-only"),
    # Allowed decisions still waiting for their outcome record (crash reconciliation) and what
    # they reserved (for refunds).
    "CREATE TABLE IF NOT EXISTS audit_intents(seq INTEGER PRIMARY KEY, op_id TEXT NOT NULL,"
    " ts REAL NOT NULL, app_id TEXT, install_id TEXT, action TEXT, write INTEGER NOT NULL,"
    " keys TEXT NOT NULL, seat INTEGER NOT NULL)",
    # Version 2: which host admitted the call, so that when several hosts share a store a
    # surviving host settles exactly a dead host's calls (`host.ledger.storelease`).
    Step(2, "ALTER TABLE audit_intents ADD COLUMN host_id TEXT"),
)


class AnchorBusy(AuditError):
    """Another writer held the anchor's turn past `ANCHOR_LOCK_WAIT_S`: it was not moved."""


@contextmanager
def anchor_lock(anchor: Path, wait_s: float = ANCHOR_LOCK_WAIT_S) -> Iterator[None]:
    """Hold the turn to write `anchor`: an flock on `.<name>.lock` beside it, which every
    thread (each opens its own file description) and process of this host takes before it
    reads the anchor to move it. The file holds nothing and is kept (a writer that unlinked
    it could lock one inode while the next locks another). It is the owner's alone (0600,
    never through a symlink): anyone who can open it can hold it and keep the anchor still.
    Raises `AnchorBusy` past `wait_s`, OSError when the file cannot be made (full disk)."""
    path = anchor.with_name(f".{anchor.name}.lock")
    # O_NONBLOCK: a FIFO put there would block the open (inside a bridge call's anchoring).
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                 | os.O_NOCTTY, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # made looser by someone else: the owner's again
        deadline, pause = time.monotonic() + wait_s, ANCHOR_POLL_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() + pause > deadline:
                    raise AnchorBusy(f"another writer has held {path} for over {wait_s:g} s "
                                     "(an operator command stopped mid-anchoring?)") from None
            time.sleep(pause)
            pause = min(pause * 2, ANCHOR_POLL_MAX_S)
        yield
    finally:
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------------------------------


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
    host_id: str | None = None  # the host that admitted it (None: before schema version 2)


def append_in(conn: Conn, body: str, ts: float) -> int:
    """Append one validated body inside the caller's BEGIN IMMEDIATE transaction."""
    head = chainhead.last(conn)
    seq, prev = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
    digest = chain_hash(prev, seq, ts, body)
    conn.execute("INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)",
                 (seq, ts, body, prev, digest))
    chainhead.wrote(conn, seq, prev, seq, digest)
    return seq


class GroupCommit(Protocol):
    """Reads' records waiting for their group commit (`host.ledger.groupcommit.ReadBatch`)."""

    def writing(self) -> AbstractContextManager[Conn]: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class AuditLog:
    """Append-only hash-chained audit log over `host.db` (see the module docstring)."""

    def __init__(self, db: StoreTarget, clock: Clock, *, anchor_path: Path | None = None,
                 key_path: Path | None = None, anchor_every: int = ANCHOR_EVERY,
                 readonly: bool = False) -> None:
        self.store = db if isinstance(db, Store) else open_store(db, readonly=readonly)
        self.clock = clock
        if anchor_path is None or key_path is None:
            # The anchor and its key are this host's own files, never in the store they guard.
            # A SQLite store's home holds them; a shared store's hosts must say where theirs are.
            if self.store.local_dir is None:
                raise StoreError(f"{self.store.where}: a shared store needs this host's own "
                                 "anchor_path and key_path")
            root = self.store.local_dir
        self.anchor_path = anchor_path or root / "audit.anchor"
        # A shared store's hosts copy each other's keys/ folder (the signing keyring: SCALE.md);
        # the anchor's key is this host's alone, so it sits beside its anchor instead.
        self.key_path = key_path or (root / "keys" / "audit-anchor.key"
                                     if isinstance(self.store, SqliteStore)
                                     else root / "audit-anchor.key")
        self.anchor_every = max(1, anchor_every)
        self.anchor_wait_s = ANCHOR_LOCK_WAIT_S  # for another writer's turn (`anchor_lock`)
        self.readonly = readonly or self.store.readonly
        self._closed = False
        # An anchoring failed (a full disk, a damaged anchor, a chain that does not verify from
        # it) and was logged, or the caller was told already (a failed `verify`): said once,
        # until an anchoring succeeds again.
        self._anchor_failing = False
        # Set by a ledger that group-commits reads: every write then goes through it.
        self.batch: GroupCommit | None = None
        # What the anchor may move over (`host/ledger/trusted.py`).
        self.trusted = TrustedHead()
        if not self.readonly:
            ensure_schema(self.store, SCHEMA_COMPONENT, SCHEMA_VERSION, DDL)
        joining = not self.readonly and not self.key_path.exists()
        self._key = load_or_create_key(self.key_path, create=not self.readonly)
        if self.readonly:
            return
        head = self._head_row()
        if joining and not isinstance(self.store, SqliteStore) and head is not None:
            # A host joining a shared store anchors the chain as it finds it (trust on first
            # use): its anchor guards every record from here on against truncation. Walked
            # whole first, since from then on an operator's command walks only the records
            # after the anchor: a chain that does not verify is left unanchored, for `verify`
            # (and so `serve` and every operator command) to name its first bad record. In a
            # home of its own the first open finds the chain empty, and a missing key beside a
            # non-empty chain stays an error ("anchor missing"): someone deleted both files.
            found = walk(self.store.conn().execute(
                "SELECT seq, ts, body, prev_hash, hash FROM audit ORDER BY seq"), None, None, "")
            if found.first_bad_seq is None and found.head_hash is not None:
                self.trusted.verified((found.last_seq, found.head_hash))
                self.write_anchor()
            else:
                log.warning("joining a shared store whose audit chain does not verify "
                             "(record %s: %s): not anchored", found.first_bad_seq,
                             found.problem)
        elif head is None and self.read_anchor_or_none() is None:
            # An empty chain and nothing anchored: every record from here on is new, so this
            # process may anchor what it writes (a fresh home's first record anchors itself).
            self.trusted.verified((0, GENESIS_HASH))

    # -- writing --------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[Conn]:
        """A write transaction on the log: the waiting reads' records commit first, in it.
        What it appends is noted as this process's own once it commits (`appended`; the group
        commit notes its own)."""
        return self._recorded() if self.batch is None else self.batch.writing()

    @contextmanager
    def _recorded(self) -> Iterator[Conn]:
        with self.store.transaction() as c, Recording(c) as runs:
            yield c
        self.appended(runs)  # committed (an exception skips this)

    def appended(self, runs: Sequence[Run]) -> None:
        """Runs of records this process has committed: the trusted head moves over them."""
        self.trusted.appended(runs)

    def _sync(self) -> None:
        """Readers in this process see the reads' records too (read your own writes)."""
        if self.batch is not None and not self._closed:
            self.batch.flush()

    def append(self, record: AuditRecord | Mapping[str, Any]) -> int:
        """Append durably; returns the seq. Raises AuditError if the record was not written."""
        rec = record if isinstance(record, AuditRecord) else AuditRecord.from_dict(record)
        body = rec.body()
        self._check_open()
        try:
            with self.transaction() as c:
                seq = append_in(c, body, float(self.clock.now()))
        except DB_ERRORS as e:  # SQLite's and PostgreSQL's alike: the caller's AuditError
            raise AuditError(f"audit append failed: {e}") from e
        self.after_append(seq)
        return seq

    def after_append(self, seq: int) -> None:
        """Anchor the chain after record 1 and every `anchor_every` records."""
        if seq == 1 or seq % self.anchor_every == 0:
            self.anchor_quietly()

    def anchor_quietly(self) -> None:
        """`write_anchor`, where a file system that refuses the small anchor file (full, I/O
        error) is one log line, not an error: the records are already committed, and an anchor
        that lags only pins an older head (truncation below it is still detected); it moves on
        at the next anchoring once the disk has room. A damaged or forged anchor file
        (`AuditError`) is one log line too: it is never overwritten here (`verify` reports it,
        and only a `--degraded` start replaces it), and the append that committed before this
        ran must not be reported as failed."""
        try:
            self.write_anchor()
        except OSError as e:
            if not self._anchor_failing:
                log.error("audit anchor not moved (%s): the chain is intact, the anchor lags "
                          "until the disk has room", e.strerror or e)
            self._anchor_failing = True
        except AnchorBusy as e:  # the other writer moves it; this one tries again next time
            if not self._anchor_failing:
                log.warning("audit anchor not moved this time: %s", e)
            self._anchor_failing = True
        except AuditError as e:
            if not self._anchor_failing:
                log.error("audit anchor not moved: %s; see `stockade audit verify`", e)
            self._anchor_failing = True
        else:
            self._anchor_failing = False

    def write_anchor(self, *, force: bool = False) -> Anchor | None:
        """Pin the chain's head in the anchor file (atomic rename). None if empty.

        Only a head verified from the anchor (see the module docstring): raises AuditError,
        leaving the anchor as it is, when the anchor is damaged or the chain does not verify
        from it. `force`: from the new segment this process has just started, over a damaged
        anchor or backwards (`start_segment` only).

        The anchor is read, checked and replaced in one turn of `anchor_lock` (module
        docstring); raises `AnchorBusy` when another writer keeps the turn too long."""
        if self._key is None or self.readonly:
            return None
        head = self._head_row()
        if head is None:
            return None  # nothing to pin (and no lock file made for it)
        if not force:
            current = self.read_anchor()
            if current is not None and current.seq >= max(head[0], (self.trusted.get()
                                                                     or (0, ""))[0]):
                return current  # the common idle round: no turn needed to write nothing
        with anchor_lock(self.anchor_path, self.anchor_wait_s):
            return self._anchor_in_turn(key=self._key, force=force)

    def _anchor_in_turn(self, *, key: bytes, force: bool) -> Anchor | None:
        # What this process trusts is read before the table's head: another thread's commit
        # moves it only after committing, so it can then never be newer than the head read.
        # (The other order turned such a commit in between into "records were cut".)
        trusted = self.trusted.get()
        head = self._head_row()
        if head is None:
            return None
        # Read again in the turn: a writer that anchored further while this one waited wins.
        current = None if force else self.read_anchor()
        if current is not None and current.seq >= max(head[0], (trusted or (0, ""))[0]):
            return current  # another writer anchored further already; never move backwards
        try:
            seq, h = verify_to_head(self.store.conn(), current, trusted, head)
        except AuditError:
            if trusted is not None and cut_under(self.store.conn(), current, trusted):
                write_anchor_file(self.anchor_path, key, *trusted)  # `verify` names the cut
            raise
        self.trusted.verified((seq, h))
        return write_anchor_file(self.anchor_path, key, seq, h)

    def verify_from_anchor(self) -> None:
        """Raise AuditError unless the chain verifies from the anchor to its head: what an
        operator's record is appended onto (rule 14 keeps rule 9's promise: nothing is chained
        onto records that may be forged). Walks only the records after the anchor, or after
        what this process verified or wrote, never the whole chain."""
        self._sync()
        trusted = self.trusted.get()  # before the head: see `write_anchor`
        try:
            # The anchor before the head: a serving host anchors over records it committed, so
            # an anchor read first is never past a head read after it unless records were cut.
            # (Head first, a host appending and anchoring in between refused the operator's
            # command over an intact chain: "records N..M are missing".)
            anchor = self.read_anchor()
            head = self._head_row()
            last = 0 if head is None else head[0]
            if anchor is not None and anchor.seq > last:
                raise AuditError(f"records {last + 1}..{anchor.seq} are missing: the anchor "
                                 f"pins seq {anchor.seq}")
            if head is not None:
                self.trusted.verified(verify_to_head(self.store.conn(), anchor, trusted,
                                                     head))
        except AuditError as e:
            self._anchor_failing = True  # said by this raise: the anchoring at close is quiet
            raise AuditError(
                f"the audit chain does not verify ({e}), and nothing is chained onto it: see "
                "`stockade audit verify`; restore host.db and audit.anchor from a backup, or "
                "start the host once with `stockade serve --degraded`, which starts a new, "
                "anchored segment that records the break") from e

    def _head_row(self) -> tuple[int, str] | None:
        row = auditrows.head(self.store.conn())
        return None if row is None else (row[0], str(row[1]))

    def read_anchor(self) -> Anchor | None:
        """The anchor, or None if there is none. Raises AuditError if it is forged or damaged."""
        return read_anchor(self.anchor_path, self._key, self.key_path)

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
        self._sync()
        if n <= 0 or not self._has_table():
            return []
        rows = list(auditrows.rows(self.store.conn(), "ORDER BY seq DESC LIMIT ?", (n,)))
        return [entry_from_row(r) for r in reversed(rows)]

    def show(self, seq: int) -> AuditEntry | None:
        """One record by seq, or None."""
        self._sync()
        if not self._has_table():
            return None
        r = next(auditrows.rows(self.store.conn(), "WHERE seq=?", (seq,)), None)
        return None if r is None else entry_from_row(r)

    def head(self) -> tuple[int, str]:
        """(last seq, its hash); (0, GENESIS_HASH) when empty."""
        self._sync()
        if not self._has_table():
            return 0, GENESIS_HASH
        r = self.store.conn().execute(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS_HASH) if r is None else (int(r[0]), str(r[1]))

    def pending_intents(self, host_id: str | None = None, *,
                        untagged: bool = False) -> list[Intent]:
        """Allowed decisions with no outcome record yet, oldest first. Only `host_id`'s when
        given (the calls a dead host left unfinished); only those no host is named on when
        `untagged` (admitted before the audit schema's version 2, or by a CLI process)."""
        self._sync()
        if not table_exists(self.store.conn(), "audit_intents"):
            return []
        rows = self.store.conn().execute(
            "SELECT seq, op_id, ts, app_id, install_id, action, write, host_id"
            " FROM audit_intents WHERE CASE WHEN ? = 1 THEN host_id IS NULL"
            " ELSE CAST(? AS TEXT) IS NULL OR host_id = ? END ORDER BY seq",
            (1 if untagged else 0, host_id, host_id)).fetchall()
        return [Intent(int(r[0]), str(r[1]), float(r[2]), r[3], r[4], r[5], bool(r[6]), r[7])
                for r in rows]

    def verify(self, *, progress: Progress | None = None,
               every: int = PROGRESS_EVERY) -> VerifyResult:
        """Walk the whole chain and check the anchor; report the first bad record (the walk
        and what it reports: `host.ledger.verify.walk`). `progress(done, total)` is called
        every `every` records walked (`total`: the newest seq, which a chain that verifies
        has as many records as)."""
        self._sync()
        try:
            anchor = self.read_anchor()
            anchor_problem = None
        except AuditError as e:
            anchor, anchor_problem = None, str(e)
        rows: Iterable[tuple[Any, ...]] = [] if not self._has_table() else \
            auditrows.rows(self.store.conn(), "ORDER BY seq")
        # A non-empty chain always has an anchor: the first record anchors itself, and a host
        # joining a shared store anchors it at once (when it verifies). Whether the key is
        # there too says nothing (whoever deleted the anchor can delete its key), so neither
        # excuses its absence.
        missing = ("anchor missing: truncation cannot be ruled out "
                   f"({self.anchor_path} was deleted or never written"
                   + ("" if self._key is not None else
                      f", and its key {self.key_path} is missing too") + ")")
        if progress is not None:
            head = self._head_row() if self._has_table() else None
            rows = counted(rows, progress, every, 0 if head is None else head[0])
        res = walk(rows, anchor, anchor_problem, missing)
        if res.ok and res.head_hash is not None:
            self.trusted.verified((res.last_seq, res.head_hash))
        elif not res.ok:
            # Said to the caller (a refused start names it): the anchorings it makes fail, at
            # close for one, do not log it again.
            self._anchor_failing = True
        return res

    def start_segment(self, broken: VerifyResult, actor: str) -> int:
        """Start a new segment after a chain that does not verify (a `--degraded` start).

        The segment record is not chained onto the broken chain (its prev_hash is genesis, so
        nothing written from now on depends on records that may be forged); it records where
        the old chain broke (`ref_seq`), why, the old head (`head_seq`, `head_hash`) and the
        old chain's last record that verified (`good_seq`, `good_hash`, from `broken`'s walk),
        which `verify` holds the rows before it to, and the anchor is moved to it."""
        if broken.ok:
            raise AuditError("the chain verifies: no segment to start")
        self._check_open()
        try:
            with self.transaction() as c:
                # The head in this transaction: no record can land between it and the segment.
                head = auditrows.head(c)
                old = (head[0], str(head[1])) if head else (0, GENESIS_HASH)
                good = broken.good or (0, GENESIS_HASH)
                # The rows after the last good one as `broken`'s walk found them, when it saw
                # the same head (a record appended since would make the pin a false alarm).
                rest = broken.rest if broken.last_seq == old[0] else None
                # A newest row whose hash is no hash (written by hand) is recorded by its seq
                # alone, or the recovery could never start; `rest` still pins that row.
                head_hash = old[1] if is_hex64(old[1]) else None
                body = AuditRecord(
                    kind="segment", event="chain_break", actor=actor,
                    ref_seq=broken.first_bad_seq, head_seq=old[0], head_hash=head_hash,
                    good_seq=good[0], good_hash=good[1], rest_digest=rest,
                    detail=f"chain broken at record {broken.first_bad_seq}: {broken.problem}"
                    ).body()
                seq = old[0] + 1
                anchor = self.read_anchor_or_none()
                if anchor is not None and anchor.seq >= seq:
                    seq = anchor.seq + 1  # records the anchor pinned were cut: keep seq ahead
                ts = float(self.clock.now())
                digest = chain_hash(GENESIS_HASH, seq, ts, body)
                c.execute(
                    "INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES(?, ?, ?, ?, ?)",
                    (seq, ts, body, GENESIS_HASH, digest))
        except DB_ERRORS as e:  # SQLite's and PostgreSQL's alike: the caller's AuditError
            raise AuditError(f"audit append failed: {e}") from e
        # The new chain starts at the record this process has just written.
        self.trusted.verified((seq, digest), restart=True)
        self.write_anchor(force=True)
        return seq

    def read_anchor_or_none(self) -> Anchor | None:
        """The anchor, or None when it is missing, damaged or forged (a new segment replaces it)."""
        try:
            return self.read_anchor()
        except AuditError:
            return None

    def close(self) -> None:
        """Anchor the head (when it verifies from the anchor: `write_anchor`) and close this
        thread's connection. Appends then raise."""
        if self._closed:
            return
        try:
            if self.batch is not None:
                self.batch.close()
            if not self.readonly:
                self.anchor_quietly()
        finally:
            self._closed = True
            self.store.close()


def open_readonly(db_path: StoreTarget, clock: Clock) -> AuditLog:
    """Open an existing store for `verify`/`tail`/`show` without creating anything."""
    if isinstance(db_path, Path) and not db_path.exists():
        raise StoreError(f"no store at {db_path}")
    return AuditLog(open_store(db_path, readonly=True), clock, readonly=True)


__all__ = [
    "ANCHOR_EVERY", "ANCHOR_LOCK_WAIT_S", "GENESIS_HASH", "Anchor", "AnchorBusy", "AuditEntry",
    "AuditError", "AuditLog", "AuditRecord", "Intent", "VerifyResult", "anchor_lock",
    "append_in", "canonical_json", "chain_hash", "digest_args", "escape_text", "open_readonly",
]
