"""What the console's audit page and apps page read of the audit chain: its verdict, a search,
the refusals of the last hour.

The page once verified the whole chain and searched only the newest 5,000 records on every
request, on the console's event loop: on a busy host an older refusal vanished from the search
(and from the apps page's count) without a word, and each page load walked a million records
(~4 s) while every other request waited. Now:

- the chain is walked whole at most every FULL_VERIFY_S per console process; between, only the
  records after the head it last verified (`walk_from`: each re-hashed), and the page says when
  the last whole walk was. A failure either way is reported by a whole walk, naming the first
  bad record;
- a search reads the chain newest first, SCAN_BATCH records at a time, until MAX_ROWS match,
  a record stamped SINCE_SLACK_S before `since` is reached, or SCAN_MAX records were read, and
  says how far it read when it stopped short;
- the refusals of the last hour are read by time in SQL, only the refusals parsed.

Records are not in time order: each is stamped with the wall clock before its transaction takes
the write lock (two writers commit in either order), reads' records are group-committed up to
10 ms after their stamp, an NTP step or a VM restore moves the clock back, and several hosts on
one store have clocks of their own. The search once stopped at the first record older than
`since`: one stamped a second early hid every later-stamped record behind it, and the page said
it had read back to `since`. Now a record is kept or left by its own stamp, and the read goes
SINCE_SLACK_S further back before it stops; what a clock stepped back further than that put
behind is not found by time (the page says so: `stockade audit tail --json` reads it all).

Callers run these off the event loop (`anyio.to_thread`).
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from host.ledger import auditrows
from host.ledger.audit import AuditEntry, AuditLog
from host.ledger.entry import entry_from_row, loads_object
from host.ledger.verify import VerifyResult, walk_from

# How often the page walks the whole chain (between, only the records after what it verified):
# guards the console's CPU on a long chain while still catching a rewrite of old records.
FULL_VERIFY_S = 300.0
# Most records one search returns, and reads (newest first) before it stops: guards the console
# against a search that matches little over a long chain (~5 us a record read).
MAX_ROWS = 200
SCAN_MAX = 200_000
SCAN_BATCH = 5_000
# How far before `since` (seconds) a search or the hourly refusal count keeps reading. Guards:
# a record stamped after `since` committed behind one stamped before it (writers' order, group
# commit, a clock stepped back, hosts' clocks apart; module docstring) missing from a search.
SINCE_SLACK_S = 600.0
# The largest audit sequence number the store can hold (SQLite's INTEGER). Guards: a longer
# number in a record's URL or a search's `before` reaching the store, whose driver raises on it
# (a 500, not a 404 or a 400).
MAX_SEQ = 2**63 - 1
# The records a refusal's body holds, as the chain stores them (sorted keys, no whitespace):
# a prefilter in SQL, each candidate checked again once parsed.
_REFUSAL_TEXT = '%"allowed":false%'


@dataclass(frozen=True)
class Verdict:
    result: VerifyResult
    full_walk_at: float  # when the whole chain was last walked (epoch seconds)


@dataclass(frozen=True)
class Search:
    entries: list[AuditEntry]  # newest first
    scanned: int  # records read
    complete: bool  # read back to the chain's start
    oldest_seq: int | None  # the oldest record read, when not complete
    # Stopped at a record stamped SINCE_SLACK_S before `since` (not at the chain's start).
    by_time: bool = False


class AuditView:
    """One console process's view: the last verdict, kept between requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: Verdict | None = None

    def verdict(self, log: AuditLog) -> Verdict:
        with self._lock:
            last = self._last
            now = time.time()
            if last is not None and last.result.ok and last.result.head_hash is not None \
                    and now - last.full_walk_at < FULL_VERIFY_S:
                head = log.head()
                rows = auditrows.rows(log.store.conn(), "WHERE seq > ? AND seq <= ? ORDER BY seq",
                                      (last.result.last_seq, head[0]))
                try:
                    good, problem = walk_from(rows, (last.result.last_seq,
                                                     last.result.head_hash))
                finally:
                    rows.close()
                if problem is None and good == head:  # else a whole walk names what is wrong
                    grown = good[0] - last.result.last_seq
                    self._last = Verdict(dataclasses.replace(
                        last.result, records=last.result.records + grown, last_seq=good[0],
                        head_hash=good[1]), last.full_walk_at)
                    return self._last
            self._last = Verdict(log.verify(), now)
            return self._last


def search(log: AuditLog, *, app: str, code: str, rule: str, since: float | None,
           before: int | None = None) -> Search:
    """The newest records matching every filter given, among those numbered below `before`
    when given (the page's "Older" link: the oldest record the last page read); see the
    module docstring."""
    conn = log.store.conn()
    found: list[AuditEntry] = []
    scanned, below = 0, before
    while scanned < SCAN_MAX and len(found) < MAX_ROWS:
        rows = list(auditrows.rows(conn, "WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                                   (2**62 if below is None else below, SCAN_BATCH)))
        if not rows:
            return Search(found, scanned, True, None)
        for r in rows:
            stamped = r[1] if isinstance(r[1], float) else None
            if since is not None and stamped is not None and stamped < since - SINCE_SLACK_S:
                return Search(found, scanned, False, below, by_time=True)
            scanned, below = scanned + 1, int(r[0])
            if since is not None and stamped is not None and stamped < since:
                continue  # its own stamp leaves it; a later-stamped one may sit behind it
            # A forged row (not a JSON object) matches no filter and is shown as what it is.
            body = loads_object(r[2]) or {}
            rules = body.get("rules")
            if ((not app or body.get("app_id") == app) and (not code or body.get("code") == code)
                    and (not rule or (isinstance(rules, list) and rule in rules))):
                found.append(entry_from_row(r))
                if len(found) >= MAX_ROWS:
                    break
        if len(rows) < SCAN_BATCH and len(found) < MAX_ROWS:
            return Search(found, scanned, True, None)
    return Search(found, scanned, False, below)


def refusals_since(log: AuditLog, since: float) -> dict[str, int]:
    """Refused decisions per install id stamped at or after `since`: the chain read newest first
    by its key until a record stamped SINCE_SLACK_S before `since` (no index on time; records
    are not in time order: module docstring), only the refusals parsed."""
    out: dict[str, int] = {}
    conn = log.store.conn()
    # On SQLite the body as its bytes: a row whose text is no UTF-8 (a writer of host.db can
    # store one) raised out of the fetch, and the apps page answered 500 (`auditrows`).
    body_col = "CAST(body AS BLOB)" if log.store.dialect == "sqlite" else "body"
    below = 2**62
    while True:
        rows = conn.execute(
            f"SELECT seq, ts, CASE WHEN body LIKE ? THEN {body_col} END FROM audit"  # noqa: S608 - constants; the values are bound
            " WHERE seq < ? ORDER BY seq DESC LIMIT ?", (_REFUSAL_TEXT, below, SCAN_BATCH)
        ).fetchall()
        for _seq, ts, raw in rows:
            if isinstance(ts, float) and ts < since - SINCE_SLACK_S:
                return out
            if isinstance(ts, float) and ts < since:
                continue
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8")
                except UnicodeDecodeError:
                    continue  # no text: no refusal the host wrote
            body = loads_object(raw)  # None: no refusal, or a forged row that is none
            if body is not None and body.get("kind") == "decision" \
                    and body.get("allowed") is False:
                iid = str(body.get("install_id"))
                out[iid] = out.get(iid, 0) + 1
        if len(rows) < SCAN_BATCH:
            return out
        below = int(rows[-1][0])


def parse_before(text: str) -> int | None:
    """The `before` record number: None when not given, 0 for anything but a number from 1 to
    MAX_SEQ (a larger one must not reach the store, whose driver raises on it)."""
    if not text:
        return None
    if not (len(text) <= 19 and text.isascii() and text.isdigit()) or \
            not 0 < int(text) <= MAX_SEQ:
        return 0
    return int(text)


def parse_since(text: str) -> float | None:
    """Epoch seconds, or an ISO date and time (UTC when no zone is given); None if neither."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:  # "nan" and "inf" parse, and would match nothing without a word
        return seconds if math.isfinite(seconds) else None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
