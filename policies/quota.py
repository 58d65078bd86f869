"""Exact sliding-window quota math (pure). The durable store (host/ledger/quota.py) keeps the log.

"At most N in any window W" in the last-N-timestamps form: a call at time t is admitted iff
fewer than N admitted calls lie in (t - W, t]. Only the newest N timestamps can ever matter, so
a store may keep a ring of N per key. Unlike fixed windows or token buckets this never lets 2N
through around a boundary.

Clock steps: the store keeps a high-water mark (the largest `now` it has seen) and uses
`effective_now(now, high_water)`; a wall clock that steps backwards therefore never moves the
window back and never frees units. Timestamps later than `now` (written before a step back)
still count.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

# The bounds of what the host's quota store enforces, in one place: the store
# (host/ledger/quota.py) refuses a charge past them, and the policy loader refuses a file past
# them (lint STK019, an error), so a policy that loads never meets a charge the store refuses.
# Were they to disagree, every call under such a quota would fail inside its admission.
#
# Largest N a quota may have. Guards the database: a ring keeps up to N rows per key, plus an
# O(N) re-layout when a policy raises a limit past its ring (a refund costs only the units newer
# than its own: `host.ledger.quota._refund_key`).
MAX_QUOTA_LIMIT = 100_000
# Longest window (seconds): 366 days. Guards against a typo or an inf-like value turning a
# quota into "never frees".
MAX_WINDOW_S = 366 * 24 * 3600
# Largest seat ceiling (active app-created users). Guards against a typo turning the ceiling
# into "unlimited".
MAX_SEATS = 10_000_000

# Refunds (DESIGN rule 13), one copy for the host's ledger and the author harness: error codes
# that mean "refused before anything was applied", whose quota units come back (anything else,
# a timeout or an internal error, keeps them), but only while the install's refusal budget
# (at most REFUSAL_BUDGET refusals in any REFUSAL_WINDOW_S seconds, each charged to it) has
# room, so a quota still bounds an app looping on refused calls.
REFUNDABLE_ERRORS = frozenset({"not_found", "conflict", "invalid_argument"})
REFUSAL_BUDGET = 200
REFUSAL_WINDOW_S = 60.0


def effective_now(now: float, high_water: float | None) -> float:
    """The time to decide at: never earlier than any time already used."""
    return now if high_water is None else max(now, high_water)


def used(timestamps_sorted: Sequence[float], window_s: float, now: float) -> int:
    """How many timestamps count against the window ending at `now` (all t > now - window_s)."""
    return len(timestamps_sorted) - bisect_right(timestamps_sorted, now - window_s)


def admit(timestamps_sorted: Sequence[float], limit: int, window_s: float, now: float) -> bool:
    """True iff one more unit fits: fewer than `limit` timestamps in (now - window_s, now].

    `timestamps_sorted` ascending; `now` should already be `effective_now(...)`. A limit of
    zero or less admits nothing.
    """
    return limit > 0 and used(timestamps_sorted, window_s, now) < limit


def next_free_at(
    timestamps_sorted: Sequence[float], limit: int, window_s: float, now: float
) -> float | None:
    """When the next unit frees: `now` if one is free already, None if never (limit <= 0)."""
    if limit <= 0:
        return None
    start = bisect_right(timestamps_sorted, now - window_s)
    in_window = timestamps_sorted[start:]
    if len(in_window) < limit:
        return now
    # The (count - limit + 1)-th oldest must leave (t > now' - W fails once now' >= t + W).
    oldest = in_window[len(in_window) - limit]
    free = oldest + window_s
    # Float rounding can leave free - window_s > oldest; step up to the first exact instant.
    while free - window_s < oldest:
        free = math.nextafter(free, math.inf)
    return max(free, now)


def retain(timestamps_sorted: Sequence[float], limit: int) -> list[float]:
    """The only timestamps a store needs to keep for this limit: the newest `limit`."""
    if limit <= 0:
        return []
    return list(timestamps_sorted[-limit:])
