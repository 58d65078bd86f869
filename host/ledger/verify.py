"""Verifying the audit chain: the hash rule, and the walk `stockade audit verify` runs.

The rule (`chain_hash`) and what a walk detects are described in `host/ledger/audit.py`. `walk`
takes the stored rows oldest first and the anchor as read, and reports the first bad `seq` of
the newest segment, each earlier segment's break, and whether the anchor pins the chain.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from host.ledger.anchor import Anchor
from host.ledger.bodycheck import body_problem

GENESIS_HASH = "0" * 64


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
    reported in `breaks`; `ok` says whether the newest segment and the anchor hold.
    """
    prev, expected, count = GENESIS_HASH, 1, 0
    anchored_hash: str | None = None
    breaks: list[str] = []
    broken: tuple[int, str] | None = None  # the current segment's first problem

    def bad(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(False, count, expected - 1, seq, problem, anchor,
                            breaks=tuple(breaks))

    for seq, ts, body, prev_hash, h in rows:
        if (prev_hash == GENESIS_HASH and seq > 1 and isinstance(body, str)
                and isinstance(ts, float) and chain_hash(prev_hash, seq, ts, body) == h
                and is_segment(body)):
            # A new segment: whatever was wrong before it was acknowledged by this record.
            breaks.append(f"segment ending at seq {seq - 1}: " + (
                f"record {broken[0]}: {broken[1]}" if broken else "verified")
                + f"; new segment from seq {seq}")
            broken, prev, expected = None, GENESIS_HASH, seq
        if broken is not None:
            expected, count = seq + 1, count + 1  # keep walking for a later segment
            continue
        problem = record_problem(seq, expected, ts, body, prev_hash, prev, h)
        if problem is not None:
            broken = (problem[0], problem[1])
            expected, count = seq + 1, count + 1
            continue
        if anchor is not None and seq == anchor.seq:
            anchored_hash = h
        prev, expected, count = h, expected + 1, count + 1
    if broken is not None:
        return bad(*broken)
    last = expected - 1
    done = tuple(breaks)
    if anchor_problem is not None:
        return VerifyResult(False, count, last, last + 1 if last else None,
                            anchor_problem, None, breaks=done)
    if anchor is None:
        if last > 0:
            return VerifyResult(False, count, last, None, missing_anchor, None, breaks=done)
        return VerifyResult(True, count, last, None, None, None, breaks=done)
    if anchor.seq > last:
        return VerifyResult(False, count, last, last + 1,
                            f"records {last + 1}..{anchor.seq} are missing: the anchor "
                            f"pins seq {anchor.seq} (truncated, or lost in a power "
                            "failure)", anchor, breaks=done)
    if anchored_hash != anchor.hash:
        return VerifyResult(False, count, last, anchor.seq,
                            "record differs from the anchored hash (chain rewritten)",
                            anchor, breaks=done)
    return VerifyResult(True, count, last, None, None, anchor,
                        (f"records after seq {anchor.seq} are not yet anchored",)
                        if last > anchor.seq else (), breaks=done)


def is_segment(body: str) -> bool:
    try:
        return bool(json.loads(body).get("kind") == "segment")
    except (ValueError, AttributeError):
        return False


def record_problem(seq: int, expected: int, ts: object, body: object, prev_hash: str,
                   prev: str, h: str) -> tuple[int, str] | None:
    """What is wrong with one stored row at this point of the walk, or None."""
    if seq != expected:
        if seq > expected:
            return expected, f"record {expected} is missing (next stored is {seq})"
        return seq, f"unexpected seq {seq}"
    if prev_hash != prev:
        return seq, ("prev_hash does not match the previous record's hash "
                     "(a record was inserted, deleted or moved)")
    if not isinstance(ts, float) or not isinstance(body, str) or \
            chain_hash(prev_hash, seq, ts, body) != h:
        return seq, "hash does not match the record's content (record edited)"
    problem = body_problem(body)
    if problem is not None:
        return seq, f"body is not a valid record: {problem}"
    return None


__all__ = ["GENESIS_HASH", "VerifyResult", "chain_hash", "is_segment", "record_problem", "walk"]
