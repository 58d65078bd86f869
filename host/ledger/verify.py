"""Verifying the audit chain: the hash rule, and the walk `stockade audit verify` runs.

The rule (`chain_hash`) and what a walk detects are described in `host/ledger/audit.py`. `walk`
takes the stored rows oldest first and the anchor as read, and reports the first bad `seq` of
the newest segment, each earlier segment's break, and whether the anchor pins the chain.
`verify_to_head` checks only the records after the anchor (or after what this process already
trusts): what an anchoring and an operator's record need, cheap enough to run every time.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from host.ledger import auditrows
from host.ledger.anchor import Anchor
from host.ledger.bodycheck import body_problem
from host.ledger.records import AuditError
from host.store import Conn

GENESIS_HASH = "0" * 64
# Most earlier segments a verdict describes one line each (the rest are counted in one line).
# Guards the memory and the output of `verify` against a host.db holding a flood of segment
# records (they need no key); every segment is still walked and checked.
MAX_BREAKS = 100
# Latest time a record may hold (9999-12-31T23:59:59Z, the last second a date can show); the
# earliest is the epoch. A host's clock gives nothing outside: guards every reading tool that
# shows a record's time (and the console's search, which reads the chain in time order)
# against a forged row's inf, 1e300 or negative time on a chain that verifies.
MAX_TS = 253402300799.0
# How segments written before `head_seq`/`head_hash` existed name the old head, at the end of
# their `detail` (a detail cut at its cap loses it: that segment's old head is then unknown).
# A hash as a segment names it (anything else is no hash, and never repeated in a problem).
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OLD_HEAD = re.compile(r"; old head (?:seq (\d+) hash ([0-9a-f]{64})|empty)\Z")


# How many records a whole walk reads between two progress reports (`counted`): about six
# seconds of `audit verify` here, so a short chain says nothing and a long one is never silent.
PROGRESS_EVERY = 1_000_000
Progress = Callable[[int, int], None]


def counted(rows: Iterable[tuple[Any, ...]], progress: Progress, every: int,
            total: int) -> Iterator[tuple[Any, ...]]:
    """`rows` as they are, calling `progress(done, total)` after every `every` of them."""
    done, every = 0, max(1, every)
    for row in rows:
        yield row
        done += 1
        if done % every == 0:
            progress(done, total)


def chain_hash(prev_hash: str, seq: int, ts: float, body: str) -> str:
    """hash = sha256(prev_hash bytes || "seq\\nts\\n" || body) — see `host/ledger/audit.py`."""
    h = hashlib.sha256(bytes.fromhex(prev_hash))
    h.update(f"{seq}\n{ts!r}\n".encode())
    h.update(body.encode())
    return h.hexdigest()


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
    # Earlier segments of the chain and where each broke (acknowledged by a --degraded start).
    breaks: tuple[str, ...] = field(default=())
    # When ok: the newest record's hash (with `last_seq`, the head this process may trust).
    head_hash: str | None = None
    # The newest segment's last record that verified as a chain (whatever the anchor says;
    # None: not one did), and the digest of its rows after that one (`rest_digest`): what a
    # segment started after this result pins (`start_segment`).
    good: tuple[int, str] | None = None
    rest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "records": self.records, "last_seq": self.last_seq,
            "first_bad_seq": self.first_bad_seq, "problem": self.problem,
            "anchor": None if self.anchor is None
            else {"seq": self.anchor.seq, "hash": self.anchor.hash},
            "notes": list(self.notes), "breaks": list(self.breaks),
        }


def walk(rows: Iterable[tuple[Any, ...]], anchor: Anchor | None, anchor_problem: str | None,
         missing_anchor: str) -> VerifyResult:
    """Walk `(seq, ts, body, prev_hash, hash)` rows oldest first and check them and the anchor.

    `anchor_problem`: why the anchor file could not be read (damaged, forged). `missing_anchor`:
    the problem a non-empty chain with no anchor is reported with.

    A chain may hold segments: a `segment` record (prev_hash = genesis) starts a new one after
    a break that an operator acknowledged by starting a host with `--degraded`
    (`AuditLog.start_segment`). Each earlier segment is still walked and its first problem
    reported in `breaks`; `ok` says whether the newest segment and the anchor hold, and
    whether the history before each segment is still what the segment acknowledged
    (`history_problem`): nothing before a segment is pinned by the anchor, only by that.
    """
    prev, expected, count = GENESIS_HASH, 1, 0
    anchored_hash: str | None = None  # the anchored record's, if in the newest segment
    start = 1  # where the newest segment starts
    breaks: list[str] = []
    unsaid = 0  # segments past MAX_BREAKS: counted, not described

    def said() -> tuple[str, ...]:
        return tuple(breaks) + ((f"... and {unsaid} more segments (each walked and checked "
                                 "as well)",) if unsaid else ())
    broken: tuple[int, str] | None = None  # the current segment's first problem
    last_row: tuple[int, str] | None = None  # the (seq, hash) of the row before this one
    moved: tuple[int, str] | None = None  # the first segment whose history changed since
    good: tuple[int, str] | None = None  # the current segment's last record that verified
    rest = hashlib.sha256()  # the current segment's rows after `good` (`rest_digest`)

    def bad(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(False, count, expected - 1, seq, problem, anchor,
                            breaks=said(), good=good, rest=rest.hexdigest())

    for seq, ts, body, prev_hash, h in rows:
        segment = None
        if (prev_hash == GENESIS_HASH and seq > 1 and isinstance(body, str)
                and isinstance(ts, float) and chain_hash(prev_hash, seq, ts, body) == h):
            segment = _segment(body)
        if segment is not None:
            # A new segment: what was wrong before it was acknowledged by this record, as long
            # as the rows before it are still the ones it acknowledged.
            ref, head, pinned, rest_pin = segment
            changed = history_problem(seq, ref, head, last_row, broken, pinned, good) or (
                (seq, "the old chain's rows after its last good record are not the ones the "
                 f"segment at seq {seq} pinned: history before that segment was deleted or "
                 "rewritten") if rest_pin is not None and rest_pin != rest.hexdigest()
                else None)
            moved = moved or changed
            line = (f"segment ending at seq {seq - 1}: " + (
                f"NOT as acknowledged: record {changed[0]}: {changed[1]}" if changed
                else f"record {broken[0]}: {broken[1]}" if broken else "verified")
                + ("" if head is not None else "; its old head is not recorded")
                + ("" if pinned is not None else
                   "; the records before its break are not pinned (an older segment)")
                + f"; new segment from seq {seq}")
            if len(breaks) < MAX_BREAKS:
                breaks.append(line)
            else:
                unsaid += 1
            broken, prev, expected, good = None, GENESIS_HASH, seq, None
            rest = hashlib.sha256()
            # The anchor pins the newest segment (a --degraded start moves it into the
            # segment it writes): a record at the anchored seq before it pins nothing now.
            start, anchored_hash = seq, None
        last_row = (seq, h)
        if broken is not None:
            rest.update(_row_bytes(seq, ts, body, prev_hash, h))
            expected, count = seq + 1, count + 1  # keep walking for a later segment
            continue
        problem = record_problem(seq, expected, ts, body, prev_hash, prev, h)
        if problem is not None:
            broken = (problem[0], problem[1])
            rest.update(_row_bytes(seq, ts, body, prev_hash, h))
            expected, count = seq + 1, count + 1
            continue
        if anchor is not None and seq == anchor.seq:
            anchored_hash = h
        prev, expected, count, good = h, expected + 1, count + 1, (seq, h)
    if moved is not None:
        return bad(*moved)
    if broken is not None:
        return bad(*broken)
    last = expected - 1
    done = said()
    if anchor_problem is not None:
        return VerifyResult(False, count, last, last + 1 if last else None,
                            anchor_problem, None, breaks=done, good=good,
                            rest=rest.hexdigest())
    if anchor is None:
        if last > 0:  # the head's hash too: a host joining a shared store anchors it
            return VerifyResult(False, count, last, None, missing_anchor, None, breaks=done,
                                head_hash=prev, good=good, rest=rest.hexdigest())
        return VerifyResult(True, count, last, None, None, None, breaks=done, head_hash=prev)
    if anchor.seq > last:
        return VerifyResult(False, count, last, last + 1,
                            f"records {last + 1}..{anchor.seq} are missing: the anchor "
                            f"pins seq {anchor.seq} (truncated, or lost in a power "
                            "failure)", anchor, breaks=done, good=good,
                            rest=rest.hexdigest())
    if anchor.seq < start:
        # A segment record needs no key: one appended after the anchored head by someone
        # else would make a newest segment nothing pins (the anchor may then never move).
        return VerifyResult(False, count, last, start,
                            f"the anchor pins seq {anchor.seq}, before the newest segment "
                            f"(from seq {start}), which nothing pins: a segment record no "
                            "--degraded start of this host wrote", anchor, breaks=done,
                            good=good, rest=rest.hexdigest())
    if anchored_hash != anchor.hash:
        return VerifyResult(False, count, last, anchor.seq,
                            "record differs from the anchored hash (chain rewritten)",
                            anchor, breaks=done, good=good,
                            rest=rest.hexdigest())
    return VerifyResult(True, count, last, None, None, anchor,
                        (f"records after seq {anchor.seq} are not yet anchored",)
                        if last > anchor.seq else (), breaks=done, head_hash=prev)


def walk_from(rows: Iterable[tuple[Any, ...]], start: tuple[int, str],
              ) -> tuple[tuple[int, str], tuple[int, str] | None]:
    """Check the rows after `start` (a (seq, hash) known good), oldest first: each the next
    seq, chained onto the one before, hashing to its content, with a valid body. Returns the
    last good (seq, hash) and the first problem (seq, why), or None."""
    good = start
    for seq, ts, body, prev_hash, h in rows:
        problem = record_problem(seq, good[0] + 1, ts, body, prev_hash, good[1], h)
        if problem is not None:
            return good, problem
        good = (seq, h)
    return good, None


def verify_to_head(conn: Conn, anchor: Anchor | None, trusted: tuple[int, str] | None,
                   head: tuple[int, str]) -> tuple[int, str]:
    """`head`, verified from the anchor: from `trusted` (what this process verified or wrote
    since, which descends from the anchor) when it is at or past the anchored seq, else from
    the anchored record, which must still have the anchored hash. Only the records after that
    point are walked. Raises AuditError naming the first problem.

    With no anchor only `trusted` can start the walk: a non-empty chain that nothing pins and
    that this process did not write from its first record (or verify) cannot be verified."""
    start = trusted
    if anchor is not None and (start is None or start[0] < anchor.seq):
        row = next(auditrows.rows(conn, "WHERE seq = ?", (anchor.seq,)), None)
        if row is None:
            raise AuditError(f"record {anchor.seq}, which the anchor pins, is missing "
                             "(truncated)")
        if str(row[4]) != anchor.hash:
            raise AuditError(f"record {anchor.seq} differs from the anchored hash "
                             "(chain rewritten)")
        # Its content too: the stored hash alone matching says nothing of a body edited since.
        edited = record_problem(int(row[0]), anchor.seq, row[1], row[2], str(row[3]),
                                str(row[3]), str(row[4]))
        if edited is not None:
            raise AuditError(f"record {edited[0]}: {edited[1]}")
        start = (anchor.seq, anchor.hash)
    if start is None:
        raise AuditError("anchor missing: nothing pins the chain to verify it from")
    if start[0] < head[0]:
        rows = auditrows.rows(conn, "WHERE seq > ? AND seq <= ? ORDER BY seq",
                              (start[0], head[0]))
        try:
            start, problem = walk_from(rows, start)
        finally:
            rows.close()  # a walk that stopped early leaves no statement open on the connection
        if problem is not None:
            raise AuditError(f"record {problem[0]}: {problem[1]}")
    if start != head:
        raise AuditError(f"the chain's head (seq {head[0]}) does not descend from the records "
                         f"this host verified or wrote (to seq {start[0]}): records were cut "
                         "or rewritten")
    return start


def cut_under(conn: Conn, anchor: Anchor | None, trusted: tuple[int, str] | None) -> bool:
    """Whether an anchoring that failed pins `trusted` instead: records this process wrote or
    verified past the anchor were cut or changed under it, while the anchored record still has
    its hash. Left as it was, the anchor let any number of records cut after that unseen while
    the host kept appending. (An anchored record changed is named by `verify` already: that
    anchor stays as it is.)"""
    if anchor is None or trusted is None or trusted[0] <= anchor.seq:
        return False
    row = next(auditrows.rows(conn, "WHERE seq = ?", (anchor.seq,)), None)
    return row is not None and row[4] == anchor.hash


def history_problem(seq: int, ref: int | None, head: tuple[int, str] | None,
                    last_row: tuple[int, str] | None, broken: tuple[int, str] | None,
                    pinned: tuple[int, str] | None = None,
                    good: tuple[int, str] | None = None) -> tuple[int, str] | None:
    """What is wrong with the history before the segment record `seq`, or None.

    The segment broke from `head`, the old chain's newest record, so the row before it must be
    that one (fewer rows: history deleted; another hash: rewritten). The old chain broke at
    `ref`, so every record before `ref` verified then and must still (a missing or edited one
    was deleted or edited since). And its last record that verified then is `pinned` (when the
    segment records it), so the old chain must still verify up to exactly that record (`good`
    now): records before the break re-hashed from their start keep verifying, and keep the
    break at the same seq, but cannot end at the same hash."""
    if ref is not None and broken is not None and broken[0] < ref:
        return broken[0], (f"{broken[1]}, before record {ref} where the chain broke when the "
                           f"segment at seq {seq} was started: history before that segment "
                           "was changed since")
    if head is not None and (last_row or (0, GENESIS_HASH)) != head:
        found = f"seq {last_row[0]}" if last_row else "nothing"
        return seq, (f"the records before this segment end at {found}, not at the old head it "
                     f"records (seq {head[0]} hash {head[1][:12]}...): history before the "
                     "segment was deleted or rewritten")
    if pinned is not None and (good or (0, GENESIS_HASH)) != pinned:
        found = f"seq {good[0]} hash {good[1][:12]}..." if good else "nothing"
        return seq, (f"the old chain's records verify up to {found}, not up to seq "
                     f"{pinned[0]} hash {pinned[1][:12]}... as when the segment at seq {seq} "
                     "was started: history before that segment was rewritten or deleted")
    return None


def _row_bytes(seq: object, ts: object, body: object, prev_hash: object, h: object) -> bytes:
    """One stored row, unambiguously (each value's repr, whatever its type), for `rest`."""
    return f"{seq!r}\x00{ts!r}\x00{body!r}\x00{prev_hash!r}\x00{h!r}\n".encode(
        "utf-8", "backslashreplace")


def _segment(body: str) -> tuple[int | None, tuple[int, str] | None,
                                 tuple[int, str] | None, str | None] | None:
    """A segment record's (ref_seq, old head, last good record, rest digest), or None when
    `body` is no segment record."""
    try:
        d = json.loads(body)
    except (ValueError, RecursionError):  # not a record at all: the walk names it as such
        return None
    if not isinstance(d, dict) or d.get("kind") != "segment":
        return None
    ref = d.get("ref_seq")
    seq, h = d.get("head_seq"), d.get("head_hash")
    head: tuple[int, str] | None = None
    if isinstance(seq, int) and isinstance(h, str) and _HEX64.fullmatch(h):
        head = (seq, h)
    elif seq is None and isinstance(d.get("detail"), str) and (
            m := _OLD_HEAD.search(d["detail"])):  # written before head_seq existed
        head = (int(m[1]), m[2]) if m[1] else (0, GENESIS_HASH)
    gs, gh = d.get("good_seq"), d.get("good_hash")
    pinned = (gs, gh) if isinstance(gs, int) and isinstance(gh, str) \
        and _HEX64.fullmatch(gh) else None
    rd = d.get("rest_digest")
    rest = rd if isinstance(rd, str) and _HEX64.fullmatch(rd) else None
    return (ref if isinstance(ref, int) else None), head, pinned, rest


def record_problem(seq: int, expected: int, ts: object, body: object, prev_hash: str,
                   prev: str, h: str) -> tuple[int, str] | None:
    """What is wrong with one stored row at this point of the walk, or None."""
    if seq != expected:
        if seq == auditrows.NO_SEQ:
            return expected, ("a row's seq is no integer where this record should be (the "
                              "audit table was made again)")
        if seq > expected:
            return expected, f"record {expected} is missing (next stored is {seq})"
        return seq, f"unexpected seq {seq}"
    if prev_hash != prev:
        return seq, ("prev_hash does not match the previous record's hash "
                     "(a record was inserted, deleted or moved)")
    if not isinstance(ts, float) or not isinstance(body, str) or \
            chain_hash(prev_hash, seq, ts, body) != h:
        return seq, "hash does not match the record's content (record edited)"
    problem = ts_problem(ts)
    if problem is not None:
        return seq, problem
    problem = body_problem(body)
    if problem is not None:
        return seq, f"body is not a valid record: {problem}"
    return None


def ts_problem(ts: object) -> str | None:
    """Why `ts` is no time a record may hold, or None."""
    if not isinstance(ts, float) or not 0.0 <= ts <= MAX_TS:  # NaN fails the comparison too
        return f"its time {repr(ts)[:40]} is no time a host's clock gives (forged)"
    return None


__all__ = ["GENESIS_HASH", "MAX_BREAKS", "MAX_TS", "PROGRESS_EVERY", "Progress", "VerifyResult",
           "chain_hash", "counted", "cut_under", "history_problem",
           "record_problem", "ts_problem", "verify_to_head", "walk", "walk_from"]
