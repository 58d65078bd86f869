"""Rate limits on the REST API's public routes: the chat widget's, which anyone who can reach the
server calls without a staff credential.

Each public call can write (a visitor's row, a room, a message) and wake every app that handles
the event it fires (`livechat.room_started`, `message.sent`, each app's pre-send hook); nothing
but the network stood between one client and as many of them as it could send. A limit is
kept per client (the TCP peer's address; behind a reverse proxy the operator trusts, the address
it appended to `X-Forwarded-For`), keyed by its IPv4 address or its IPv6 /64, since an IPv6
client may send from any address of the /64 it is handed (`host.server.clientaddr.rate_key`),
as Rocket.Chat's API rate limiter keeps its own per address, and is answered in Rocket.Chat's
shape (429, `errorType` `error-too-many-requests`, its `X-RateLimit-*` headers) with a
`Retry-After` too, which Rocket.Chat leaves out.

The algorithm is GCRA (the generic cell rate algorithm): per key one number, the time at which
the key's next call would be "on schedule" (its theoretical arrival time). A key may run up to
`calls` ahead of the steady rate, then one call each `per_s / calls` seconds: a token bucket of
`calls` refilled at `calls / per_s`, in O(1) time and memory per key. From idle a key gets
`calls` at once; no span of `per_s` seconds ever holds more than twice `calls` (the burst and
the refill). Not a quota: these limits bound a flood's rate, where the quotas that guard the
workspace are exact windows (`host.ledger.quota`). The table of keys is bounded (`max_keys`,
least recently seen forgotten first): a key whose arrival time has passed holds nothing (it is
as if new), so only a table full of keys still ahead of schedule forgets anything, and then the
least recently seen, which is the most lenient outcome for the fewest callers.

Per process: the REST front (or the host serving REST itself) keeps its own table, so several
hosts serving one workspace each admit the rate. Behind a reverse proxy on the machine every
visitor's TCP peer is the proxy: unless the operator names it (`serve --trusted-proxy`), all of
them share its one limit; named, each visitor is the address the proxy appended (its /64 for
IPv6), and a visitor whose header the proxy left unreadable is counted as the proxy
(`host.server.clientaddr`).
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Keys tracked at most per limiter (DESIGN rule 13: what a client can make the process keep is
# bounded). One float and a key each: ~100 bytes, so ~6 MiB at the bound.
MAX_TRACKED_KEYS = 65_536


@dataclass(frozen=True)
class Rate:
    """`calls` per `per_s` seconds: a burst of `calls`, then the steady rate."""

    calls: int
    per_s: float

    def __post_init__(self) -> None:
        if self.calls < 1 or not self.per_s > 0 or not math.isfinite(self.per_s):
            raise ValueError(f"not a rate: {self.calls} calls per {self.per_s} s")


# Every public widget route together, per client (an IPv4 address, an IPv6 /64), in calls a
# minute (`serve --widget-rate`; 0: no limit). A widget a visitor uses reads its room's history
# every few seconds and sends what the visitor types: well under this. Guards the store and the
# apps' event fan-out against one client's flood.
WIDGET_CALLS_PER_MIN = 120
# Visitor registrations (`POST livechat/visitor`), per client, as a share of the widget's rate
# (10 a minute at the default): each is a row kept for good, and a fresh token escapes nothing
# here (the limits are per client address or IPv6 /64, not per token).
REGISTRATION_SHARE = 12
# The public routes limited: the widget's (its visitor token is the credential). `info` answers
# from memory; `login` has its failure budget (`host.server.signin_budget`).
WIDGET_PREFIX = "livechat/"
REGISTRATION = ("POST", "livechat/visitor")


@dataclass(frozen=True)
class Refused:
    """A call over the limit: how long until one is allowed (s), and the limit refused by."""

    wait_s: float
    rate: Rate

    @property
    def retry_after(self) -> int:
        """Whole seconds, rounded up (a client that waits this long is let through)."""
        return max(1, math.ceil(self.wait_s))


class RateLimiter:
    """One `Rate` per key (see the module docstring)."""

    def __init__(self, rate: Rate, *, max_keys: int = MAX_TRACKED_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._interval = rate.per_s / rate.calls  # the steady rate's spacing
        self._slack = rate.per_s - self._interval  # how far ahead of schedule a key may run
        self._max_keys = max_keys
        self._clock = clock
        self._due: OrderedDict[str, float] = OrderedDict()  # key -> its theoretical arrival
        self._lock = threading.Lock()

    def take(self, key: str) -> Refused | None:
        """Count one call of `key`: None if it is allowed, else how long to wait (nothing is
        counted for a refused call: a client that keeps asking waits no longer for it)."""
        with self._lock:
            now = self._clock()
            due = max(self._due.get(key, now), now)
            ahead = due - now - self._slack
            if ahead > 1e-9:
                self._due.move_to_end(key)
                return Refused(ahead, self.rate)
            self._due[key] = due + self._interval
            self._due.move_to_end(key)
            if len(self._due) > self._max_keys:
                self._due.popitem(last=False)
            return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._due)


class WidgetLimits:
    """The limits the REST app keeps on the widget's public routes, per client key (an IPv4
    address or an IPv6 /64: `host.server.clientaddr`): `calls_per_min` for all of them
    together, and a twelfth of it for registrations."""

    def __init__(self, calls_per_min: int = WIDGET_CALLS_PER_MIN, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if calls_per_min < 0:
            raise ValueError(f"a widget rate is 0 (no limit) or more calls a minute, not "
                             f"{calls_per_min}")
        self.calls = RateLimiter(Rate(calls_per_min, 60.0), clock=clock) \
            if calls_per_min else None
        self.registrations = RateLimiter(
            Rate(max(1, calls_per_min // REGISTRATION_SHARE), 60.0), clock=clock) \
            if calls_per_min else None

    def refused(self, method: str, route: str, public: bool, peer: str) -> Refused | None:
        """Count a call of `method route` (a public route, or not) from the client keyed `peer`
        (`TrustedProxies.client`): None if it may run, else why not."""
        if self.calls is None or not public or not route.startswith(WIDGET_PREFIX):
            return None
        if (method, route) == REGISTRATION:
            assert self.registrations is not None
            over = self.registrations.take(peer)
            if over is not None:
                return over
        return self.calls.take(peer)


def too_many(refused: Refused) -> tuple[int, dict[str, object], dict[str, str]]:
    """(status, body, headers) for a refused call, as Rocket.Chat's rate limiter answers."""
    wait = refused.retry_after
    body: dict[str, object] = {
        "success": False, "errorType": "error-too-many-requests",
        "error": "Error, too many requests. Please slow down. You must wait "
                 f"{wait} seconds before trying this endpoint again. [error-too-many-requests]"}
    reset_ms = int((time.time() + refused.wait_s) * 1000)
    return 429, body, {"Retry-After": str(wait),
                       "X-RateLimit-Limit": str(refused.rate.calls),
                       "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)}
