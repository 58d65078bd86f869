"""How the console's store-reading pages and actions meet a host store they cannot use now, or
a keyring that does not read: a page says it cannot tell and why, a change is a 503 saying what
to do, within `STORE_WAIT_S` and without holding the front's event loop.

The store's own wait for a write lock another process holds (a migration, a backup) is
`host.store.sqlite.BUSY_TIMEOUT_MS`, 10 s (the embedded server's, `host.server.db`, 5 s). A
guarded route first asks, off the event loop and for at most `STORE_WAIT_S`, whether the lock
can be had, and answers a 503 when it cannot. The store can still be taken right after that
check passes; so the route's own store, keyring and package work (`work`) runs on a worker
thread too, only its request body is read on the loop (`read`): a store taken meanwhile makes
that one request wait the store's busy timeout and fail as a 503 ("cannot tell now", "the change
may not have been made"), while every other request of the front (its REST API too) goes on.
Before, the work ran on the event loop and every request of the front waited with it.
"""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from host.home import Home
from host.inert import visible
from host.keys.keyring import KeyError_
from host.ledger.records import AuditError
from host.store import STORE_FAILURES

log = logging.getLogger("stockade.console")
# How long a console request waits for the host store's write lock before it says the store
# cannot be used now. Guards: the operator's page (an answer within a couple of seconds, not the
# store's 10 s busy wait) and the front's worker threads (each waiting request holds one).
STORE_WAIT_S = 2.0
# Worker threads the console's blocking steps hold at once (the pre-check, a guarded route's
# `work`, a sign-in, each request's session check, the quotas and policy pages, a package's
# checks), one limiter per console.
# Not anyio's default limiter (40 threads), which starlette's static files and upload spooling
# and, under `serve --server rocketchat`, the webhook receiver draw on; and the REST API runs on
# an executor of its own (`host.server.rest.REST_THREADS`) that no console request can take.
# Guards: those threads, against a burst of console requests over a store taken past the
# pre-check (each holds its thread up to the store's busy wait): past this many, a console
# request waits its turn on the event loop, holding no thread. Operators are a few people.
CONSOLE_THREADS = 8

S = TypeVar("S")
F = TypeVar("F")


def console_threads() -> anyio.CapacityLimiter:
    """The limiter of one console's blocking steps (`CONSOLE_THREADS`)."""
    return anyio.CapacityLimiter(CONSOLE_THREADS)


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


def guarded(home: Home, threads: anyio.CapacityLimiter,
            read: Callable[[Request, S], Awaitable[F | Response]],
            work: Callable[[Request, S, F], Response]
            ) -> Callable[[Request, S], Awaitable[Response]]:
    """A route that opens the host store or reads the keyring: the pre-check above, then `read`
    on the event loop (the request's body: a form, an upload; or its refusal, a Response,
    answered as it is), then `work` (the store and keyring work, and the response built from
    it) on a worker thread of `threads`; a store or keyring failure of its own is a 503 saying
    so (was a 500 with a traceback)."""
    async def run(request: Request, s: S) -> Response:
        busy = await anyio.to_thread.run_sync(store_busy, home, limiter=threads)
        if busy is not None:
            return unavailable(request, busy, tried=False)
        got = await read(request, s)
        if isinstance(got, Response):
            return got
        try:
            return await anyio.to_thread.run_sync(work, request, s, got, limiter=threads)
        except STORE_FAILURES as exc:
            return _failed(request, store_why(exc))
        except AuditError as exc:  # the operator's record not written: a store failure too?
            if not isinstance(exc.__cause__, STORE_FAILURES):
                raise
            return _failed(request, store_why(exc.__cause__))
        except KeyError_ as exc:
            return _failed(request, f"the host's keyring does not read: {why(exc)}")
    return run


def guarded_page(home: Home, threads: anyio.CapacityLimiter,
                 work: Callable[[Request, S], Response]
                 ) -> Callable[[Request, S], Awaitable[Response]]:
    """`guarded` for a route with no body to read (a page)."""
    return guarded(home, threads, _no_body, lambda request, s, _none: work(request, s))


async def _no_body(request: Request, s: object) -> None:
    return None


def _failed(request: Request, reason: str) -> Response:
    log.warning("console: %s %s: %s", request.method, request.url.path, reason)
    return unavailable(request, reason, tried=True)
