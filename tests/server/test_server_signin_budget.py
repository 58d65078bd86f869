"""The failed sign-in budget kept in the server's store (`host.server.signin_budget`), on both
engines: bounded, blocked accounts never forgotten to make room, names counted too, attempts
counted before the password is checked (so racing guesses get no more than the budget), rows
gone with their user, and a PostgreSQL store taken to the table through `stockade store
migrate`."""
from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

import psycopg
import pytest

from host.clock import ManualClock
from host.console.operators import ServerOperators, StoreUnavailable
from host.migrate import migrate, store_status
from host.server import SYSTEM, EmbeddedServer, auth, signin_budget
from host.server import db as server_db
from host.server.auth import FAILURE_WINDOW_S, MAX_FAILURES, LoginBlocked, set_password
from host.server.rest import RestDispatcher
from host.server.signin_budget import account_key, attempt, blocked, name_key
from host.store import StoreError
from host.store.pg import SERVER_WRITE_LOCK

PASSWORD = "correct horse battery"


def _names(server: EmbeddedServer) -> int:
    """The names remembered, counted, and the count kept beside them, which must agree."""
    c = server.db.conn()
    n = int(c.execute("SELECT count(*) FROM sign_in_failures WHERE user_id IS NULL").fetchone()[0])
    assert int(c.execute("SELECT n FROM sign_in_names").fetchone()[0]) == n
    return n


def test_invented_names_never_unblock_or_block_an_account(
        server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The names are bounded (here 30), and a table full of *blocked* invented names forgets
    the oldest of them: an account's block is never what goes, and no account is refused for
    want of room (before, in one process, a full table refused every account not in it)."""
    monkeypatch.setattr(signin_budget, "MAX_TRACKED_NAMES", 30)
    victim = server.users_create(SYSTEM, "victim", "V", "user")["id"]
    other = server.users_create(SYSTEM, "other", "O", "user")["id"]
    for _ in range(MAX_FAILURES):
        assert attempt(server.db, account_key(victim), victim, 1000.0)
    for i in range(30):  # fill the names with blocked ones
        for _ in range(MAX_FAILURES):
            attempt(server.db, name_key(f"nobody{i}"), None, 1001.0 + i / 100)
    for i in range(30, 100):  # and keep pushing new names in
        assert attempt(server.db, name_key(f"nobody{i}"), None, 1002.0)
    assert _names(server) == 30
    assert blocked(server.db, account_key(victim), 1003.0)
    assert not attempt(server.db, account_key(victim), victim, 1003.0)
    assert attempt(server.db, account_key(other), other, 1003.0)  # still counted, not refused
    assert not blocked(server.db, account_key(victim), 1000.0 + FAILURE_WINDOW_S + 1)


def test_a_name_that_is_not_blocked_goes_first(
        server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signin_budget, "MAX_TRACKED_NAMES", 3)
    for _ in range(MAX_FAILURES):
        attempt(server.db, name_key("blocked-oldest"), None, 1000.0)
    attempt(server.db, name_key("open-a"), None, 1001.0)
    attempt(server.db, name_key("open-b"), None, 1002.0)
    attempt(server.db, name_key("newcomer"), None, 1003.0)
    assert blocked(server.db, name_key("blocked-oldest"), 1004.0)
    assert _names(server) == 3
    keys = {r[0] for r in server.db.conn().execute("SELECT key FROM sign_in_failures")}
    assert name_key("open-a") not in keys and name_key("newcomer") in keys


def test_racing_attempts_get_no_more_than_the_budget(server: EmbeddedServer) -> None:
    uid = server.users_create(SYSTEM, "race", "R", "user")["id"]
    counted: list[bool] = []

    def guess() -> None:
        for _ in range(MAX_FAILURES):
            counted.append(attempt(server.db, account_key(uid), uid, 1000.0))
        server.db.release()

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted.count(True) == MAX_FAILURES


def test_a_right_password_clears_and_a_deleted_user_takes_its_row(
        server: EmbeddedServer) -> None:
    uid = server.users_create(SYSTEM, "rita", "R", "user")["id"]
    set_password(server.db, uid, PASSWORD)
    for i in range(MAX_FAILURES - 1):
        assert auth.check(server.db, "rita", f"guess {i}", 1000.0) is None
    assert auth.check(server.db, "rita", PASSWORD, 1000.0) == uid  # the last of the budget
    for i in range(MAX_FAILURES):
        assert auth.check(server.db, "rita", f"guess {i}", 1001.0) is None
    with pytest.raises(LoginBlocked):
        auth.check(server.db, "rita", PASSWORD, 1002.0)
    server.users_delete(SYSTEM, uid)
    assert server.db.conn().execute("SELECT count(*) FROM sign_in_failures").fetchone()[0] == 0


def test_a_postgresql_store_at_schema_6_is_refused_until_migrated(pg_url: str) -> None:
    migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP TABLE sign_in_failures, sign_in_names")  # what schema 6 made
        c.execute("ALTER TABLE personal_tokens DROP COLUMN expires_at")  # schema 9's
        c.execute("UPDATE schema_version SET version = 6")
    with pytest.raises(StoreError, match="store migrate"):
        EmbeddedServer(pg_url, ManualClock())
    assert {s.name: s.current for s in store_status(pg_url)}["server"] is False
    migrate(pg_url)
    assert {s.name: s.current for s in store_status(pg_url)}["server"] is True
    server = EmbeddedServer(pg_url, ManualClock())
    try:
        uid = server.users_create(SYSTEM, "pat", "P", "user")["id"]
        for _ in range(MAX_FAILURES):
            assert attempt(server.db, account_key(uid), uid, 1000.0)
        assert not attempt(server.db, account_key(uid), uid, 1001.0)
    finally:
        server.close()


def test_a_right_password_keeps_the_failures_counted_while_it_was_checked(
        server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign-in that matches takes back the failures counted before it, never those counted
    while its own scrypt check ran: before, its `clear` deleted the account's whole row, so a
    guesser firing while the owner signed in had every guess counted meanwhile forgotten, and
    got MAX_FAILURES - 1 checks more than the budget for each of the owner's sign-ins."""
    uid = server.users_create(SYSTEM, "owen", "O", "user")["id"]
    set_password(server.db, uid, PASSWORD)
    checking, guessed = threading.Event(), threading.Event()
    real = auth._matches

    def slow_owner(stored: str, password: str) -> bool:
        if password == PASSWORD:  # the owner's check is under way: the guesser fires now
            checking.set()
            assert guessed.wait(30)
        return real(stored, password)

    monkeypatch.setattr(auth, "_matches", slow_owner)
    owner = threading.Thread(target=lambda: (auth.check(server.db, "owen", PASSWORD, 1000.0),
                                             server.db.release()))
    owner.start()
    assert checking.wait(30)
    checked = 0
    for i in range(MAX_FAILURES):  # the owner's attempt and these share the budget
        try:
            checked += auth.check(server.db, "owen", f"guess {i}", 1000.5) is None
        except LoginBlocked:
            pass
    guessed.set()
    owner.join(30)
    assert checked == MAX_FAILURES - 1
    for i in range(MAX_FAILURES):  # after the owner's sign-in: the guesser's own count stands
        try:
            checked += auth.check(server.db, "owen", f"more {i}", 1001.0) is None
        except LoginBlocked:
            pass
    assert checked == MAX_FAILURES, f"{checked} guesses checked in one window"


def test_a_store_that_cannot_count_refuses_the_sign_in_as_unavailable(
        server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Another process holds the store's write lock past the wait (a wedged host): the attempt
    cannot be counted, so the password is never checked (fail closed), and the answer is a
    503 that says so, logged as one line. Before, every sign-in (each wrong one too, from
    anyone: the route is public) was a 500 "internal server error" logged with a traceback,
    and the console's sign-in page a bare 500 with its traceback."""
    uid = server.users_create(SYSTEM, "lou", "L", "user")["id"]
    set_password(server.db, uid, PASSWORD)
    checked: list[str] = []
    real = auth._matches
    monkeypatch.setattr(auth, "_matches",
                        lambda stored, pw: checked.append(pw) or real(stored, pw))
    dispatcher = RestDispatcher(server)
    if server.db.shared is None:
        monkeypatch.setattr(server_db, "BUSY_TIMEOUT_MS", 200)
        holder: Any = sqlite3.connect(server.db.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        server.db.conn().execute("SET lock_timeout = 200")
        holder = psycopg.connect(str(server.db.target), autocommit=True)
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (SERVER_WRITE_LOCK,))
    try:
        caplog.set_level(logging.INFO)
        for pw in ("wrong guess", PASSWORD):
            status, body = dispatcher.call(None, "POST", "login",
                                           body={"user": "lou", "password": pw})
            assert status == 503, body
            assert "store" in body["error"], body
        assert all(r.exc_info is None for r in caplog.records), caplog.text
        assert checked == []  # no password was checked uncounted
        operators = ServerOperators(server)
        with pytest.raises(StoreUnavailable):
            operators.sign_in("lou", PASSWORD)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert dispatcher.call(None, "POST", "login",
                           body={"user": "lou", "password": PASSWORD})[0] == 200


def test_hosts_whose_clocks_disagree_share_one_window_on_postgresql(pg_url: str) -> None:
    """Hosts on several machines share a PostgreSQL store, and their clocks may disagree (the
    leases go by the database server's clock for that reason, docs/SCALE.md). The budget's
    window does too: before, each host timed the failures by its own clock, so a host 400 s
    ahead saw every failure counted by the others as past the window and checked ten more
    (20 in all here); with the skew under the window, fewer, but still more than ten."""
    migrate(pg_url)
    server = EmbeddedServer(pg_url, ManualClock())
    try:
        uid = server.users_create(SYSTEM, "sam", "S", "user")["id"]
        set_password(server.db, uid, PASSWORD)
        checked = 0
        for i, host_clock in enumerate([5000.0] * MAX_FAILURES + [5400.0] * MAX_FAILURES):
            try:
                checked += auth.check(server.db, "sam", f"guess {i}", host_clock) is None
            except LoginBlocked:
                pass
        assert checked == MAX_FAILURES, f"{checked} guesses checked in one window"
    finally:
        server.close()


def test_an_account_deleted_during_its_sign_in_is_refused_without_a_traceback(
        server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """An admin deletes the account between the sign-in's look-up of the name and the count of
    its attempt (whose row names the user): a refused sign-in (401), no password checked.
    Before, the count's foreign key failed and the public route answered 500 with a
    traceback."""
    uid = server.users_create(SYSTEM, "dee", "D", "user")["id"]
    set_password(server.db, uid, PASSWORD)
    checked: list[str] = []
    real_match, real_count = auth._matches, signin_budget.count
    monkeypatch.setattr(auth, "_matches",
                        lambda stored, pw: checked.append(pw) or real_match(stored, pw))

    def deleted_first(*args: Any) -> int | None:
        server.users_delete(SYSTEM, uid)
        return real_count(*args)

    monkeypatch.setattr(signin_budget, "count", deleted_first)
    caplog.set_level(logging.INFO)
    status, body = RestDispatcher(server).call(None, "POST", "login",
                                               body={"user": "dee", "password": PASSWORD})
    assert status == 401, body
    assert checked == []
    assert all(r.exc_info is None for r in caplog.records), caplog.text


def test_the_consoles_sign_ins_count_by_the_servers_clock(tmp_path: Any) -> None:
    """The console's failed sign-ins and the REST API's share one budget, timed by the server's
    clock: the console timed its own by the machine's (`time.time()`), so with the server's clock
    an hour apart its ten failures fell outside the REST login's window and did not count."""
    import time

    server = EmbeddedServer(tmp_path / "server.db", ManualClock(time.time() + 3600))
    uid = server.users_create(SYSTEM, "ops", "O", "user", roles=["admin"])["id"]
    set_password(server.db, uid, PASSWORD)
    operators = ServerOperators(server)
    for _ in range(MAX_FAILURES):
        assert operators.sign_in("ops", "wrong guess") is None
    with pytest.raises(LoginBlocked):
        auth.login(server.db, "ops", PASSWORD, server.clock.now())
