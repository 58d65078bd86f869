"""What the REST API answers when its store cannot be used now, the one place that decides it.

A store the server cannot use for a moment is the operator's condition, not the server's bug:
SQLite's write lock held past the wait by another process (a wedged host: "database is locked"),
a PostgreSQL server restarting or down (the sessions it ended, a lock wait that gave up, "cannot
connect now", "too many connections"), a full disk. Each request that meets one answers

- 503 with `Retry-After` (`RETRY_AFTER_S`), in the API's error shape (`{"success": false,
  "error": "... [error-store-unavailable]", "errorType": ...}`; `error-disk-full` for a full
  disk), when no write of the request committed: the failing transaction rolled back, so the
  503 promises that nothing was written (a client may send it again; the `rest.call` bridge
  gives the app's quota unit back on a 503);
- 500 naming the part-way failure when an earlier write of the same request had committed (or
  a shared store's COMMIT got no answer: it may have applied), since then neither holds;

with one log line each, never a traceback (the store's own text, cut, rides along: it names the
condition, never a value a client sent). Any other failure stays a 500 logged with its
traceback: that is a bug to find. `RestDispatcher` (both doors: HTTP and the `rest.call`
bridge) runs every request, its authentication too, inside `store_failure`.
"""
from __future__ import annotations

import logging
import sqlite3
from typing import Any

from host.server.rest_errors import rc_error
from host.store import StoreError
from host.store.base import PgError, PgIntegrityError
from host.store.sqlite import disk_full

log = logging.getLogger("stockade.server.rest")

# Seconds a client is told to wait before sending a request the store could not take again
# (`Retry-After` on every 503). A convenience for clients, not a guard: about the writers' lock
# wait (`host.server.db.BUSY_TIMEOUT_MS`), a PostgreSQL restart's usual length.
RETRY_AFTER_S = 5

# SQLite's primary result codes of a store another connection holds: its write lock past the
# wait (SQLITE_BUSY) or a table lock inside one process (SQLITE_LOCKED).
_SQLITE_HELD = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# PostgreSQL SQLSTATE classes of a server that cannot serve now: 08 connection exception, 53
# insufficient resources (disk full, out of memory, too many connections), 57 operator
# intervention (shutdown, restart, cannot connect now, a statement cancelled).
_PG_DOWN_CLASSES = frozenset({"08", "53", "57"})
# A lock wait that gave up (lock_timeout behind a wedged host), a serialization failure and a
# deadlock victim: rolled back whole, the same request may simply be sent again.
_PG_BUSY_STATES = frozenset({"55P03", "40001", "40P01"})

DISK_FULL_MESSAGE = "the store is full (disk full); nothing was written, retry when space is back"
PARTIAL_DISK_FULL_MESSAGE = ("the store is full (disk full) part-way: an earlier step of this "
                             "request was written; check its state before retrying")
_MESSAGES = {
    "busy": "the server's store is busy (another writer held it past the wait); nothing was "
            "written, retry shortly",
    "unreachable": "the server's store cannot be reached now; nothing was written, retry "
                   "shortly",
}
_WORDS = {"disk_full": "full (disk full)", "busy": "busy", "unreachable": "unreachable"}
_PARTIAL_MESSAGE = ("the server's store failed part-way ({what}): an earlier step of this "
                    "request was written; check its state before retrying")


def store_unavailable(exc: BaseException) -> str | None:
    """Why the store could not serve this now ("disk_full", "busy", "unreachable"), or None
    when `exc` is anything else (a bug, a constraint deciding: the caller's usual path)."""
    if disk_full(exc):
        return "disk_full"
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:  # raised by the host itself (`host.store.writeturn`), not by SQLite
            return "busy" if str(exc).startswith("database is locked") else None
        return "busy" if code & 0xFF in _SQLITE_HELD else None
    if isinstance(exc, StoreError):
        return "unreachable"
    if isinstance(exc, PgError) and not isinstance(exc, PgIntegrityError):
        return _pg_unavailable(exc)
    return None


def _pg_unavailable(exc: PgError) -> str | None:
    """What a PostgreSQL failure amounts to, read from psycopg's error (its `__cause__`) by its
    SQLSTATE and class names, so that psycopg is not imported here (`host.store.base.PgError`)."""
    cause = exc.__cause__
    while isinstance(cause, PgError):  # `BrokenAtBegin` and the like wrap the store's own
        cause = cause.__cause__
    if cause is None:
        return "unreachable"  # raised by the backend itself: a fence, a broken session
    state = getattr(cause, "sqlstate", None)
    if isinstance(state, str) and state:
        if state in _PG_BUSY_STATES:
            return "busy"
        return "unreachable" if state[:2] in _PG_DOWN_CLASSES else None
    # No SQLSTATE: the client found the session gone or could not open one ("the connection
    # is closed", "server closed the connection unexpectedly"): psycopg's OperationalError.
    names = {k.__name__ for k in type(cause).__mro__}
    return "unreachable" if "OperationalError" in names else None


def store_failure(why: str, exc: BaseException, method: str, path: str, *,
                  wrote: bool) -> tuple[int, dict[str, Any]]:
    """The answer, and its one log line, for a request the store failed for `why` (from
    `store_unavailable`); `wrote`: a write of this request had committed, or may have."""
    text = str(exc).strip().replace("\n", " ")[:200]
    if wrote:
        log.error("REST %s %s failed part-way: the server's store is %s after an earlier write "
                  "of this request committed: %s", method, path, _WORDS[why], text)
        message = (PARTIAL_DISK_FULL_MESSAGE if why == "disk_full"
                   else _PARTIAL_MESSAGE.format(what=f"its store is {_WORDS[why]}"))
        return rc_error("internal", message, path, status=500)
    if why == "disk_full":
        log.error("REST %s %s refused: the store is full (disk full)", method, path)
        return rc_error("disk_full", DISK_FULL_MESSAGE, path, status=503)
    log.error("REST %s %s refused: the server's store is %s, nothing written: %s",
              method, path, _WORDS[why], text)
    return rc_error("store_unavailable", _MESSAGES[why], path, status=503)


# When a message refused because the apps' pre-send hooks are all busy may be sent again (s):
# a hook's slot is waited for up to a second (`rest.HOOK_SLOT_WAIT_S`) before that 429.
HOOKS_BUSY_RETRY_AFTER_S = 1


def retry_headers(status: int) -> dict[str, str]:
    """The headers an answer of `status` carries: `Retry-After` on every 503 (a store that
    could not serve, a sign-in its store could not count) and on a 429 of the REST app's own
    (the pre-send hooks busy; the widget's rate limit sets its own, `host.server.ratelimit`)."""
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_S)}
    return {"Retry-After": str(HOOKS_BUSY_RETRY_AFTER_S)} if status == 429 else {}
