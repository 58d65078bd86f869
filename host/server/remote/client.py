"""`RcClient`: the one pooled HTTP client that speaks to a Rocket.Chat workspace's REST API.

It authenticates as the operator's service account (a personal access token: `X-User-Id` +
`X-Auth-Token`, never shown to an app), bounds every request in time, and turns every failure
into a typed `ServerError` the gate already understands:

- 400 with Rocket.Chat's `errorType` → `NotFound` / `Conflict` / `Forbidden` /
  `InvalidArgument` (`_ERROR_TYPES`); a 400 without one by its text (`_BARE_ERRORS`: Rocket.Chat
  answers `users.info` of a missing user with `{"error": "User not found."}` alone);
  401 / 403 → `Forbidden`; 404 → `NotFound`;
- a timeout, a dropped connection or a 5xx → retried, at most `retries` more times with
  exponential backoff and full jitter, **only when the call is idempotent** (a read, or a write
  whose repeat changes nothing) or when the request provably never left (the connection was
  refused); then `Unavailable`, whose `outcome_unknown` says whether a write may have been
  applied anyway (the gate then asks `was_applied`);
- a 429 (Rocket.Chat's rate limiter, which refuses before the route runs: nothing applied) →
  any call, a create or a message too, is sent again once the limiter said it may be: after
  `Retry-After`, else Rocket.Chat's `X-RateLimit-Reset` (`_rate_limit_wait`), else the jittered
  backoff; a wait that would end past the call's deadline is not waited at all: the call fails
  at once, `Unavailable` saying how long the limiter asked for;
- a 2xx answer to a write that cannot be read (over `MAX_RESPONSE_BYTES`, not a JSON object) →
  `Unavailable` with `outcome_unknown` too: the workspace said it was done. Lone UTF-16
  surrogates in an answer become U+FFFD (no store or frame to an app could carry them).

No request can hang an app: every attempt has `timeout_s` (connect, read, write and pool), and
the whole call, retries and their waits included, is cut at `deadline_s` — also inside an
answer trickled a byte at a time (`deadline.py` clamps every socket operation to it). An answer
is read as it streams in and dropped past `MAX_RESPONSE_BYTES` (decoded), never held whole.
"""
from __future__ import annotations

import contextlib
import email.utils
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from host.inert import visible
from host.server.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    ServerError,
    Unavailable,
)
from host.server.remote import deadline

# One request's bound (connect, read, write, pool each). Guards the app's event deadline (5 s by
# default): a stalled workspace costs an app one clear `timeout` error, never a hang.
TIMEOUT_S = 4.0
# The whole call, retries and waits included. Below the app's event deadline for a default
# handler, so the app sees the typed error, not the watchdog's kill.
DEADLINE_S = 4.5
# Extra attempts for an idempotent call (so at most 3 in all). Bounded so a workspace that is
# down costs a call a few seconds, not minutes.
RETRIES = 2
# Backoff: full jitter over BASE * 2**attempt, capped. A 429's own wait is not capped here but by
# the call's deadline: asked again before it said, a limiter only refuses again.
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 2.0
# Connections kept to the workspace (one pool shared by every app's calls).
MAX_CONNECTIONS = 16
# A response body larger than this is refused (a workspace page of 100 users is ~100 KiB).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# Rocket.Chat's `errorType`s (REST error bodies) and the server error each one is here.
_ERROR_TYPES: dict[str, type[ServerError]] = {
    "error-invalid-user": NotFound,
    "error-invalid-room": NotFound,
    "error-room-not-found": NotFound,
    "error-department-not-found": NotFound,
    "error-invalid-visitor": NotFound,
    "error-invalid-role": NotFound,
    "error-role-not-found": NotFound,
    "error-field-unavailable": Conflict,
    "error-user-already-agent": Conflict,
    "error-room-closed": Conflict,
    "error-room-already-closed": Conflict,  # closeByUser: sent as the bare `error` text
    "error-action-not-allowed": Forbidden,
    "error-not-allowed": Forbidden,
    "error-unauthorized": Forbidden,
    # users.createToken without the workspace's CREATE_TOKENS_FOR_USERS_SECRET (Rocket.Chat 8+)
    # or without user-generate-access-token: the credentials refused, not a bad argument.
    "error-not-authorized": Forbidden,
    "invalid-params": InvalidArgument,
}


# Refusals Rocket.Chat sends with no `errorType` (route prefix, error text, the error it is
# here), as its OpenAPI definitions show them. Without this a deleted user was an
# InvalidArgument: the seat read-back and the read-back of a lost users.create catch NotFound.
_BARE_ERRORS: tuple[tuple[str, str, type[ServerError]], ...] = (
    ("/api/v1/users.", "User not found.", NotFound),
)


_RATE_LIMITED = "is rate limiting (429)"


class Unauthorized(Forbidden):
    """A 401: the workspace refused the credentials themselves (a revoked or expired token)."""


class RouteMissing(NotFound):
    """A 404: the workspace, or a proxy in front of it (an ingress whose backend is restarting),
    serves no such route. A NotFound to the callers that pass it on, but no proof that a user,
    room or role is absent (Rocket.Chat says a user is gone with a 400, "User not found."): the
    read-backs that settle seats and unfinished writes take it as "cannot say now"."""


class RcClient:
    """A pooled, bounded REST client for one workspace, as one service account."""

    def __init__(self, url: str, user_id: str, token: str, *, timeout_s: float = TIMEOUT_S,
                 deadline_s: float = DEADLINE_S, retries: int = RETRIES,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.base = url.rstrip("/")
        self._auth = {"X-User-Id": user_id, "X-Auth-Token": token}
        self.user_id = user_id
        self.deadline_s = deadline_s
        self.retries = retries
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (backoff jitter, not a secret)
        self._rng_lock = threading.Lock()
        self.timeout_s = timeout_s
        self.http = httpx.Client(
            base_url=self.base, timeout=httpx.Timeout(timeout_s),
            transport=deadline.transport(httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)),
            follow_redirects=False, trust_env=False)
        self.attempts = 0  # every HTTP attempt made (retries included), for `doctor` and tests

    def close(self) -> None:
        """Close the pool (idempotent)."""
        self.http.close()

    def info(self) -> dict[str, Any]:
        """GET /api/info (public): the server's version."""
        return self._request("GET", "/api/info", None, None, None, idempotent=True)

    def call(self, method: str, route: str, *, query: Mapping[str, str] | None = None,
             body: Mapping[str, Any] | None = None, idempotent: bool,
             auth: Mapping[str, str] | None = None,
             done_if_repeated: frozenset[str] = frozenset()) -> dict[str, Any]:
        """One REST call to /api/v1/`route`, as the service account (or `auth`: another
        identity's headers, e.g. a user token the host minted). Returns the success body.

        `done_if_repeated`: refusals (errorType, or the error text Rocket.Chat sends alone) that
        mean "already done" when they answer a retry after an attempt that was sent and got no
        answer: that attempt did it (a close retried after its answer was lost finds the room
        closed), so the call succeeded. On a first attempt they stay refusals."""
        return self._request(method, f"/api/v1/{route}", query, body,
                             auth or self._auth, idempotent=idempotent,
                             done_if_repeated=done_if_repeated)

    def _request(self, method: str, path: str, query: Mapping[str, str] | None,
                 body: Mapping[str, Any] | None, auth: Mapping[str, str] | None, *,
                 idempotent: bool, done_if_repeated: frozenset[str] = frozenset()
                 ) -> dict[str, Any]:
        started = time.monotonic()
        with deadline.until(started + self.deadline_s):
            return self._attempts(method, path, query, body, auth, started, idempotent,
                                  done_if_repeated)

    def _attempts(self, method: str, path: str, query: Mapping[str, str] | None,
                  body: Mapping[str, Any] | None, auth: Mapping[str, str] | None,
                  started: float, idempotent: bool, done_if_repeated: frozenset[str]
                  ) -> dict[str, Any]:
        attempt = 0
        lost = False  # an earlier attempt left and its answer never came (or was a 5xx)
        while True:
            self.attempts += 1
            sent = True
            why: str
            retry_after: float | None = None
            try:
                resp = self._attempt(method, path, query, body, auth,
                                     started + self.deadline_s)
            except httpx.ConnectError:
                sent, why = False, "refused the connection"
            except httpx.TimeoutException as exc:
                # A connect or pool timeout never sent the request; a read/write one may have.
                sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
                why = (f"did not answer within {self.timeout_s:g} s (the call's deadline is "
                       f"{self.deadline_s:g} s)")
            except httpx.TransportError as exc:
                why = f"dropped the connection ({type(exc).__name__})"
            else:
                if resp.status_code == 429:
                    why, retry_after = _RATE_LIMITED, _rate_limit_wait(resp)
                elif resp.status_code >= 500:
                    why = f"answered {resp.status_code}"
                else:
                    if lost and _already_done(resp, done_if_repeated):
                        return {"success": True}
                    return _result(resp, path, write=method != "GET" or not idempotent)
            # A 429 is the rate limiter refusing before the route runs: nothing applied, so it
            # makes no later "already done" this call's (a room closed by someone else, seen on
            # the retry after a 429, was taken for this call's close).
            limited = why == _RATE_LIMITED
            lost = lost or (sent and not limited)
            attempt += 1
            # A 429 applied nothing, so even a write sent once (a create, a message) may be
            # sent again after it: it failed at the first 429 with its outcome "unknown".
            may_retry = idempotent or not sent or limited
            wait = self._backoff(attempt, retry_after)
            late = time.monotonic() - started + wait > self.deadline_s
            if limited and retry_after is not None and late:
                why = (f"is rate limiting (429) for {retry_after:.1f} s more, past the call's "
                       f"{self.deadline_s:g} s deadline")
            if not may_retry or attempt > self.retries or late:
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                # Any write whose answer was lost, in this attempt or an earlier one, may have
                # been applied, idempotent or not (a GET that opens a room, `livechat/room`, is
                # a write too): the gate then asks `was_applied`. A request that never left, or
                # that the rate limiter refused, applied nothing.
                unknown = lost and (method != "GET" or not idempotent)
                tail = ("; it may have been applied: the host checks" if unknown
                        else "; nothing was applied" if not lost else "")
                raise Unavailable(f"Rocket.Chat at {self.base} {why} ({tries}){tail}",
                                  outcome_unknown=unknown, nothing_applied=not lost)
            self._sleep(wait)

    def _attempt(self, method: str, path: str, query: Mapping[str, str] | None,
                 body: Mapping[str, Any] | None, auth: Mapping[str, str] | None,
                 give_up: float) -> _Answer:
        """One request, its answer read as it streams in: at most MAX_RESPONSE_BYTES + 1 bytes
        (decoded) are kept, so an endless or inflating answer costs the cap, not the host's
        memory; past `give_up` the reading stops with a timeout (the deadline backend ends a
        trickle between chunks)."""
        req = self.http.build_request(method, path, params=dict(query or {}),
                                      json=None if body is None else dict(body),
                                      headers=dict(auth or {}))
        resp = self.http.send(req, stream=True)
        try:
            if resp.status_code == 429 or resp.status_code >= 500:
                return _Answer(resp.status_code, resp.headers, b"")  # its body is not read
            got = bytearray()
            for chunk in resp.iter_bytes():
                got += chunk
                if len(got) > MAX_RESPONSE_BYTES:
                    break  # enough to say it is over the cap
                if time.monotonic() > give_up:
                    raise httpx.ReadTimeout("the call's deadline passed", request=req)
            return _Answer(resp.status_code, resp.headers, bytes(got))
        finally:
            resp.close()  # mid-answer: the connection is dropped, never reused

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(retry_after, 0.0)  # finite (`_rate_limit_wait`); the deadline bounds it
        with self._rng_lock:
            return self._rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


class _Answer:
    """An answer read whole (up to the cap): its status, headers and raw body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    def json(self) -> Any:
        return json.loads(self.content)


def _already_done(resp: _Answer, kinds: frozenset[str]) -> bool:
    """Whether a 400 answer is one of `kinds` (by errorType, or by its bare error text)."""
    if not kinds or resp.status_code != 400 or len(resp.content) > MAX_RESPONSE_BYTES:
        return False
    try:
        data = resp.json()
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and bool(
        {str(data.get("errorType") or ""), str(data.get("error") or "")} & kinds)


def _rate_limit_wait(resp: _Answer) -> float | None:
    """The 429's wait in seconds, or None (the jittered backoff then) when it names none:
    `Retry-After` (or `X-RateLimit-Reset-After`) in seconds, else Rocket.Chat's own
    `X-RateLimit-Reset`, the epoch milliseconds its window resets at (its limiter sends no
    `Retry-After`: read without this, the client retried on its jitter, three times inside
    ~0.6 s, each refused again by a window with seconds to run, and failed the call). The reset
    is measured against the answer's own `Date` (the workspace's clock: a host clock that is off
    neither shortens nor stretches the wait; `Date` has whole seconds, so the wait errs up to
    1 s long, the side a limiter accepts), else against the host's clock.

    Only a finite number counts: `float()` also reads "nan" and "inf", and a NaN wait passed
    every cap (`min`/`max` keep it) and made `time.sleep` raise ValueError out of the client,
    which the gate reads as bad input refused before any write: the units of a write the
    workspace may have applied were refunded and its outcome audited as `invalid_argument`."""
    raw = resp.headers.get("Retry-After") or resp.headers.get("X-RateLimit-Reset-After")
    wait = _finite(raw)
    if raw is not None:
        return wait
    reset_ms = _finite(resp.headers.get("X-RateLimit-Reset"))
    if reset_ms is None:
        return None
    now = time.time()
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        said = email.utils.parsedate_to_datetime(resp.headers.get("Date", ""))
        if said.tzinfo is not None:  # a zone-less date would be read as the host's zone
            now = said.timestamp()
    wait = reset_ms / 1000.0 - now
    return wait if math.isfinite(wait) else None


def _finite(raw: str | None) -> float | None:
    """`raw` as a finite number, or None."""
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _result(resp: _Answer, path: str, *, write: bool) -> dict[str, Any]:
    """The body of a non-5xx, non-429 answer, or the typed refusal it carries.

    `write`: the request may change the workspace. A 2xx answer to it that cannot be read (over
    the cap, not JSON, not an object) still says the workspace did it: the outcome is unknown,
    never "failed" (the gate then reads the workspace back: `was_applied`), so a user created
    behind a mangled answer is recorded and holds its seat."""
    unknown = write and 200 <= resp.status_code < 300
    tail = "; it may have been applied: the host checks" if unknown else ""
    if len(resp.content) > MAX_RESPONSE_BYTES:
        raise Unavailable(f"Rocket.Chat answered {path} with more than "
                          f"{MAX_RESPONSE_BYTES} bytes{tail}", outcome_unknown=unknown)
    try:
        data = _no_lone_surrogates(resp.content, resp.json())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser
        data = None
    if not isinstance(data, dict):
        if resp.status_code == 404:
            raise RouteMissing(f"Rocket.Chat has no {path}")
        raise Unavailable(f"Rocket.Chat answered {path} with {resp.status_code} and no JSON"
                          f"{tail}", outcome_unknown=unknown)
    if 200 <= resp.status_code < 300 and data.get("success", True) is not False:
        return data
    said = data.get("error") or data.get("message")
    # The workspace's own words go into the error an app sees and into the host's log lines
    # (the webhook worker's, the seat read-back's) on the operator's terminal: inert there
    # (DESIGN rule 12: escapes shown, never acted on; one line; capped).
    message = visible(said, limit=300) if said else f"HTTP {resp.status_code}"
    if resp.status_code == 401:
        raise Unauthorized(f"Rocket.Chat refused the token ({message}); "
                           "run `stockade rocketchat check`")
    if resp.status_code == 403:
        raise Forbidden(f"Rocket.Chat: {message}")
    if resp.status_code == 404:
        raise RouteMissing(f"Rocket.Chat: {message}")
    raise _refusal(path, data, message)(f"Rocket.Chat: {message}")


# A lone UTF-16 surrogate in an answer: as a JSON escape (`\\ud800`) or as raw bytes, which
# `json.loads` decodes with `surrogatepass`. Python keeps it in a `str`, but no UTF-8 writer
# takes it: the host's store raised UnicodeEncodeError (a ValueError: the gate refunds those as
# bad input) and the reply frame to the app could not be encoded. Rocket.Chat itself never sends
# one (its database holds UTF-8, where Node turns a lone surrogate into U+FFFD).
_SURROGATE_IN_BODY = re.compile(rb"\\u[dD][89abcdefABCDEF]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_lone_surrogates(raw: bytes, data: Any) -> Any:
    """`data` with every lone surrogate replaced by U+FFFD, as Node stores it (a quick look at
    the raw body first: almost every answer has none, and is returned as it is)."""
    if not _SURROGATE_IN_BODY.search(raw):
        return data
    return _replace_surrogates(data)


def _replace_surrogates(value: Any) -> Any:
    # Recursion is bounded by the JSON parser's own nesting limit (it parsed `value`).
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def _refusal(path: str, data: dict[str, Any], message: str) -> type[ServerError]:
    """The error a 400 is here: by its `errorType`; without one, by its text (some refusals
    carry the type as their whole `error`, `error-room-already-closed`; some only a sentence)."""
    kind = str(data.get("errorType") or "")
    if kind:
        return _ERROR_TYPES.get(kind, InvalidArgument)
    if message in _ERROR_TYPES:
        return _ERROR_TYPES[message]
    for prefix, text, error in _BARE_ERRORS:
        if path.startswith(prefix) and message == text:
            return error
    return InvalidArgument
