"""A stored audit record as the reading tools get it: `audit tail`/`show`, the console's page.

A row of the table is not trusted to be a record: anyone who can write host.db can append a
row after the anchored seq (or anywhere once the chain is broken) whose body is not JSON, not
an object, nested past the decoder's stack, holds a field of the wrong type, or whose time or
hashes are not what the host writes. `audit verify` names such a row; the tools that show the
records around it must still show them, and it as what it is. So a row becomes an `AuditEntry`
whose `invalid` says why it is no valid record (its stored text escaped by the caller, cut at
MAX_SHOWN), whose `body` is the parsed object only when it is one (else empty), and whose time
is 0.0 when it is none a clock gives: an entry is always safe to format and to put in JSON.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from host.ledger.bodycheck import body_problem
from host.ledger.verify import ts_problem

# Most characters of a forged row's stored text (body or hash) an entry carries. Guards the
# operator's screen, a `--json` reader and the console page against a multi-megabyte row.
MAX_SHOWN = 512

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AuditEntry:
    """A stored record: its chain position and its body (see the module docstring)."""

    seq: int
    ts: float
    body: dict[str, Any]
    prev_hash: str
    hash: str
    # Why this row is no valid record (a forged or damaged row), or None.
    invalid: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"seq": self.seq, "ts": self.ts, "record": self.body,
               "prev_hash": self.prev_hash, "hash": self.hash}
        if self.invalid is not None:
            out["invalid"] = self.invalid
        return out


def _cut(v: object) -> str:
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def loads_object(raw: object) -> dict[str, Any] | None:
    """The stored body as a JSON object, or None when it is none (never raises)."""
    if not isinstance(raw, str):
        return None
    try:
        d = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return d if isinstance(d, dict) else None


def entry_from_row(r: tuple[Any, ...]) -> AuditEntry:
    """The entry of one `(seq, ts, body, prev_hash, hash)` row (see the module docstring)."""
    seq, ts, raw, prev, h = r
    why: list[str] = []
    if (p := ts_problem(ts)) is not None:
        why.append(p)
        ts = 0.0
    body = None
    if (p := body_problem(raw) if isinstance(raw, str) else "not text") is not None:
        why.append(f"body: {p}; stored as {_cut(raw)}")
    else:
        body = loads_object(raw)
    hashes = []
    for name, v in (("prev_hash", prev), ("hash", h)):
        if not isinstance(v, str) or not _HEX64.fullmatch(v):
            why.append(f"{name} is not 64 hex characters")
            v = _cut(v)
        hashes.append(v)
    return AuditEntry(int(seq), float(ts), body or {}, hashes[0], hashes[1],
                      "not a valid record: " + "; ".join(why) if why else None)


__all__ = ["MAX_SHOWN", "AuditEntry", "entry_from_row", "loads_object"]
