"""How the console's store-reading pages and actions meet a host store they cannot use now, or
a keyring that does not read: a page says it cannot tell and why, a change is a 503 saying what
to do, within `STORE_WAIT_S` and without holding the front's event loop.

The store's own wait for a write lock another process holds (a migration, a backup) is
`host.store.sqlite.BUSY_TIMEOUT_MS`, 10 s; the pages' stores take that lock to check their
schema as they open, on the event loop, so every other request of the front (its REST API too)
waited for it, and the page then failed with a 500. `guarded` first asks, off the event loop and
for at most `STORE_WAIT_S`, whether the lock can be had, and answers a 503 when it cannot.
"""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from host.home import Home
from host.inert import visible
from host.keys.keyring import KeyError_
from host.store import STORE_FAILURES

log = logging.getLogger("stockade.console")
# How long a console request waits for the host store's write lock before it says the store
# cannot be used now. Guards: the operator's page (an answer within a couple of seconds, not the
# store's 10 s busy wait) and the front's worker threads (each waiting request holds one).
STORE_WAIT_S = 2.0

S = TypeVar("S")


def store_busy(home: Home) -> str | None:
    """Why the home's SQLite host store cannot be written now (its write lock held by another
    connection past STORE_WAIT_S, or it does not open), or None when it can (or it is a shared
    PostgreSQL store, whose row locks this does not ask about, or there is no store yet).
    Blocks up to STORE_WAIT_S (read at each call): call it off the event loop."""
    if home.store_url is not None or not home.host_db.exists():
        return None
    try:
        c = sqlite3.connect(home.host_db, timeout=STORE_WAIT_S, isolation_level=None)
        try:
            c.execute("BEGIN IMMEDIATE")  # the lock a store takes to open; released at once
            c.execute("ROLLBACK")
        finally:
            c.close()
    except sqlite3.Error as exc:
        return store_why(exc)
    return None


def why(exc: BaseException) -> str:
    """An exception's words for a "cannot tell (why)": one line, inert, cut."""
    return visible(str(exc) or type(exc).__name__)


def store_why(exc: BaseException) -> str:
    return f"the host's store cannot be used now: {why(exc)}"


def unavailable(request: Request, reason: str, *, tried: bool) -> Response:
    """The 503 of a page or a change the console cannot serve now: what it cannot tell, why,
    and what to do. `tried`: the change may have begun (its own failure, not the pre-check)."""
    if request.method == "GET":
        head = "cannot tell now"
    elif tried:
        head = "the change may not have been made (the Apps page and the audit log show it)"
    else:
        head = "nothing was changed"
    return Response(f"{head}: {reason}. Try again in a moment; if it lasts, see "
                    "`stockade doctor`.\n", status_code=503, media_type="text/plain",
                    headers={"Retry-After": "5"})


def guarded(home: Home, handler: Callable[[Request, S], Awaitable[Response]]
            ) -> Callable[[Request, S], Awaitable[Response]]:
    """`handler` (a page or an action that opens the host store) behind the pre-check above,
    and its own store or keyring failure as a 503 saying so (was a 500 with a traceback)."""
    async def run(request: Request, s: S) -> Response:
        busy = await anyio.to_thread.run_sync(store_busy, home)
        if busy is not None:
            return unavailable(request, busy, tried=False)
        try:
            return await handler(request, s)
        except STORE_FAILURES as exc:
            log.warning("console: %s %s: %s", request.method, request.url.path, store_why(exc))
            return unavailable(request, store_why(exc), tried=True)
        except KeyError_ as exc:
            reason = f"the host's keyring does not read: {why(exc)}"
            log.warning("console: %s %s: %s", request.method, request.url.path, reason)
            return unavailable(request, reason, tried=True)
    return run


