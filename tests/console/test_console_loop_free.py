"""A host store taken by another process just AFTER the console's pre-check passed (a migration,
a backup, `sqlite3 host.db` with BEGIN EXCLUSIVE, starting between the check and the handler's
own open) made the handler's store open wait the store's busy timeout (10 s) on the front's
event loop: every other request of the front (the REST API, other operators' pages) waited with
it. Each guarded page and change now does its store and keyring work on a worker thread of the
console's own (`host.console.faults.guarded`): the loop stays free, and the answer is what it was
(a 503 "cannot tell now" / "the change may not have been made").

Two tests, to keep the suite's time: the race itself for a page and a change (each waits the
stores' busy timeouts, cut to 2 s here; of the pages, the uninstall page waits: it opens the
embedded server's tables, taking the write lock; the others only read, which WAL lets through),
and, for every page and change of test_console_faults.py's PAGES and ACTIONS, that no store
connection (the host's, or the embedded server's a handler opens) is used on the event loop's
thread at all (what any such use risks under a held store), in one served console: the race
probed for all fifteen would add ~40 s to the suite."""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conhelp import Served, signed_in
from faulthelp import ANSWER_S, OTHERS_WAIT_S, csrf_of, probe
from test_console_faults import ACTIONS, PAGES, _iid, _post

from host.console import faults
from host.server import db as server_db
from host.store import sqlite as sqlite_store
from host.store.sqlite import SqliteStore

pytestmark = pytest.mark.usefixtures("short_store_wait")

# The store's busy timeout while the race tests hold it: long enough that a handler waiting on
# the event loop holds another request past OTHERS_WAIT_S (sent 0.3 s in), short for the suite.
RACE_BUSY_MS = 2000


@pytest.fixture
def taken_after_check(served: Served, monkeypatch: pytest.MonkeyPatch
                      ) -> Iterator[list[sqlite3.Connection]]:
    """The next pre-check passes, and the store is taken by another connection (BEGIN
    EXCLUSIVE) the moment it does: the handler's own store work meets a held store."""
    held: list[sqlite3.Connection] = []
    check = faults.store_busy

    def then_taken(home: Any) -> str | None:
        busy = check(home)
        if busy is None and not held:
            lock = sqlite3.connect(served.home.host_db, isolation_level=None,
                                   check_same_thread=False)
            lock.execute("BEGIN EXCLUSIVE")
            held.append(lock)
        return busy

    monkeypatch.setattr(faults, "store_busy", then_taken)
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", RACE_BUSY_MS)
    monkeypatch.setattr(server_db, "BUSY_TIMEOUT_MS", RACE_BUSY_MS)
    yield held
    for lock in held:
        lock.execute("ROLLBACK")
        lock.close()


@pytest.mark.parametrize("method,path", [("GET", "/console/apps/IID/uninstall"),
                                         ("POST", "/console/apps/IID/disable")])
def test_a_store_taken_after_the_check_holds_no_other_request(
        served: Served, taken_after_check: list[sqlite3.Connection], method: str,
        path: str) -> None:
    c = signed_in(served)
    path = path.replace("IID", _iid(served))
    kw: dict[str, Any] = {}
    if method == "POST":
        kw = {"data": {"csrf": csrf_of(c)}, "headers": {"Origin": served.url}}
    got = probe(c, method, path, **kw)
    assert taken_after_check, "the pre-check did not run: no store was taken after it"
    assert got.response is not None, "no answer: the connection reset, or past 30 s"
    r = got.response
    # The other request (sent 0.3 s in) waited the rest of the handler's store wait (before:
    # ~1.7 s of 2 s; ~9.7 s with the store's real 10 s).
    assert got.others_wait_s < OTHERS_WAIT_S, (got.took_s, got.others_wait_s)
    assert got.took_s < ANSWER_S, got.took_s
    # The answer is what it was: the store failed under the handler, said so.
    assert r.status_code == 503 and "Retry-After" in r.headers, (r.status_code, r.text[-400:])
    head = "cannot tell now" if method == "GET" else "may not have been made"
    assert head in r.text and "store cannot be used now" in r.text, r.text


def test_no_page_or_change_uses_the_host_store_on_the_event_loop(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every PAGES and ACTIONS path of test_console_faults.py (the uninstall last: it removes
    the app the others act on), each answered, none taking a host-store connection on the
    thread that runs the front's event loop. (The front's own server is left out: the session
    check every signed-in request makes reads it on the loop; reads pass a held write lock.)"""
    c = signed_in(served)
    iid = _iid(served)
    on_loop: list[str] = []
    current: list[str] = []
    host_conn, server_conn = SqliteStore.conn, server_db.Database.conn

    def watch() -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread (or the test's own): no event loop runs here
        on_loop.append(current[-1] if current else "?")

    def host_watched(self: SqliteStore) -> sqlite3.Connection:
        watch()
        return host_conn(self)

    def server_watched(self: server_db.Database) -> Any:
        if self is not served.server.db:
            watch()
        return server_conn(self)

    monkeypatch.setattr(SqliteStore, "conn", host_watched)
    monkeypatch.setattr(server_db.Database, "conn", server_watched)
    posts = sorted(ACTIONS, key=lambda p: p.endswith("/uninstall"))
    for method, path in [*(("GET", p) for p in PAGES), *(("POST", p) for p in posts)]:
        path = path.replace("IID", iid)
        kw = _post(c, served, path) if method == "POST" else {}
        current.append(f"{method} {path}")
        r = c.request(method, path, **kw)
        assert r.status_code < 500, (method, path, r.status_code, r.text[-300:])
    assert _still_free(served.url)
    assert not on_loop, "store used on the event loop by:\n" + "\n".join(sorted(set(on_loop)))


def _still_free(url: str) -> bool:
    """The front still answers (the watch raised nothing into it)."""
    return httpx.get(f"{url}/console/login", timeout=10).status_code == 200

