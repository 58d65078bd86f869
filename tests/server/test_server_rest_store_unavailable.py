"""A store the REST API cannot use now — its write lock held past the wait by another process (a
wedged host), a PostgreSQL server that ended every session and takes no new one (down) — answers
503 with `Retry-After`, in Rocket.Chat's error shape, one log line and no traceback, nothing
written; a refusal the route meant (400, 401) stays what it was, and a read SQLite can still
serve answers. (A restart the server is back from costs a read nothing: `host.store.pg` reads
again on a new session.)

Before, each of these requests was a 500 "internal server error" with its traceback in the log
(the sign-in route alone had been made a 503); an unauthenticated widget client could fill the
host's log with tracebacks for as long as the lock was held."""
from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from test_server_rest import base_url, client, svc  # noqa: F401 - fixtures

from host.server import EmbeddedServer
from host.server import db as server_db
from host.server.rest import Ctx, RestDispatcher, RestRoute
from host.store import pg as store_pg
from host.store.pg import SERVER_WRITE_LOCK

# How long a test lets a write wait for the held lock (the production wait is seconds).
SHORT_WAIT_MS = 200


@contextmanager
def write_lock_held(server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Another process's connection holds the server's write lock (BEGIN IMMEDIATE on SQLite,
    the server tables' advisory lock on PostgreSQL) until the block ends."""
    if server.db.shared is None:
        monkeypatch.setattr(server_db, "BUSY_TIMEOUT_MS", SHORT_WAIT_MS)
        holder: sqlite3.Connection | psycopg.Connection = sqlite3.connect(
            server.db.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        # Every session the REST threads open from here waits this long for the lock.
        monkeypatch.setattr(store_pg, "LOCK_TIMEOUT_MS", SHORT_WAIT_MS)
        server.db.shared.close_idle()
        holder = psycopg.connect(str(server.db.target), autocommit=True)
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (SERVER_WRITE_LOCK,))
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["success"] is False and isinstance(body["error"], str), body
    assert "store" in body["error"] and "nothing was written" in body["error"], body
    assert body["errorType"] == "error-store-unavailable", body
    retry = r.headers.get("retry-after")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, r.headers


def _one_line_each(caplog: pytest.LogCaptureFixture, n: int) -> None:
    lines = [rec for rec in caplog.records if rec.name.startswith("stockade")]
    assert len(lines) == n, [rec.getMessage() for rec in lines]
    assert all(rec.exc_info is None and "\n" not in rec.getMessage() for rec in lines), \
        caplog.text
    assert "Traceback" not in caplog.text


def test_a_locked_store_is_a_503_with_retry_after(
        server: EmbeddedServer, base_url: str, client: httpx.Client,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with write_lock_held(server, monkeypatch):
        caplog.clear()
        made = client.post("/api/v1/users.create", json={
            "username": "lockedout", "name": "Locked Out", "email": "lo@example.org",
            "password": "a-long-enough-password"})
        visitor = httpx.post(f"{base_url}/api/v1/livechat/visitor", timeout=10,
                             json={"visitor": {"token": "visitor-locked", "name": "V"}})
        for r in (made, visitor):
            _unavailable(r)
        _one_line_each(caplog, 2)
        caplog.clear()
        # what the route meant stays: a read SQLite's WAL (and PostgreSQL) still serves, an
        # unknown user (400), no credentials (401)
        me = client.get("/api/v1/users.info", params={"username": "svc"})
        assert me.status_code == 200, me.text
        unknown = client.get("/api/v1/users.info", params={"username": "nobody-here"})
        assert unknown.status_code == 400 and unknown.json()["success"] is False, unknown.text
        anon = httpx.post(f"{base_url}/api/v1/users.create", json={"username": "x"}, timeout=10)
        assert anon.status_code == 401 and "retry-after" not in anon.headers, anon.text
        bad = client.post("/api/v1/users.create", json={"username": 5})
        assert bad.status_code == 400 and "retry-after" not in bad.headers, bad.text
        assert [rec for rec in caplog.records if rec.name.startswith("stockade")] == []
    # nothing of the refused writes was applied; with the lock gone they go through
    assert client.get("/api/v1/users.info",
                      params={"username": "lockedout"}).status_code == 400
    again = client.post("/api/v1/users.create", json={
        "username": "lockedout", "name": "Locked Out", "email": "lo@example.org",
        "password": "a-long-enough-password"})
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)  # a server that goes down
def test_a_postgresql_that_is_down_is_a_503_with_retry_after(
        server: EmbeddedServer, base_url: str, client: httpx.Client,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    """The server ends every session and takes no new one (down, or restarting past the first
    try): each request's token check, a read, and a write are 503s; once it is back, 200s."""
    assert client.get("/api/v1/me").status_code == 200  # the REST threads hold sessions now
    dbname = str(psycopg.conninfo.conninfo_to_dict(str(server.db.target))["dbname"])
    other = psycopg.conninfo.make_conninfo(str(server.db.target), dbname="template1")
    with psycopg.connect(other, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false'.encode())
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
            time.sleep(0.2)
            caplog.set_level(logging.INFO)
            caplog.clear()
            answers = [client.get("/api/v1/users.info", params={"username": "svc"})
                       for _ in range(4)]
            answers.append(client.post("/api/v1/users.create", json={
                "username": "whiledown", "name": "While Down", "email": "wd@example.org",
                "password": "a-long-enough-password"}))
            answers.append(httpx.post(f"{base_url}/api/v1/livechat/visitor", timeout=10,
                                      json={"visitor": {"token": "visitor-down", "name": "V"}}))
            for r in answers:
                _unavailable(r)
            _one_line_each(caplog, len(answers))
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true'.encode())
    assert client.get("/api/v1/me").status_code == 200  # fresh sessions serve again
    assert client.get("/api/v1/users.info",
                      params={"username": "whiledown"}).status_code == 400  # never written


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)  # SQLite's applies nothing
def test_a_shared_store_commit_with_no_answer_is_not_a_503(
        server: EmbeddedServer, caplog: pytest.LogCaptureFixture) -> None:
    """A 503 promises that nothing was written. A PostgreSQL COMMIT whose session ended before
    its answer came back may have applied: the answer is the part-way 500, one log line."""

    def ended_at_commit(ctx: Ctx) -> dict[str, Any]:
        with ctx.server.db.write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS scratch (v INTEGER)")
            c.execute("INSERT INTO scratch VALUES (1)")
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            with psycopg.connect(str(server.db.target), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return {}

    dispatcher = RestDispatcher(server, routes=(
        RestRoute("POST", "ended.commit", ended_at_commit, public=True),))
    caplog.set_level(logging.INFO)
    caplog.clear()
    status, body = dispatcher.call(None, "POST", "ended.commit", body={})
    assert status == 500 and "part-way" in body["error"], (status, body)
    _one_line_each(caplog, 1)


def test_any_other_failure_stays_a_500_with_its_traceback(
        server: EmbeddedServer, caplog: pytest.LogCaptureFixture) -> None:
    """Only a store that cannot serve now is a 503: a statement the server got wrong (a bug) is
    still the 500 logged with its traceback, and a constraint that decided is not "retry"."""
    def bad_sql(ctx: Ctx) -> dict[str, Any]:
        ctx.server.db.conn().execute("SELECT * FROM no_such_table").fetchall()
        return {}

    def constraint(ctx: Ctx) -> dict[str, Any]:
        with ctx.server.db.write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS scratch_u (v INTEGER PRIMARY KEY)")
        with ctx.server.db.write() as c:
            c.execute("INSERT INTO scratch_u VALUES (1)")
            c.execute("INSERT INTO scratch_u VALUES (1)")
        return {}

    dispatcher = RestDispatcher(server, routes=(
        RestRoute("GET", "bad.sql", bad_sql, public=True),
        RestRoute("POST", "constraint", constraint, public=True)))
    caplog.set_level(logging.INFO)
    for method, route in (("GET", "bad.sql"), ("POST", "constraint")):
        caplog.clear()
        status, body = dispatcher.call(None, method, route, body={})
        assert status == 500 and body["errorType"] == "error-internal", (route, status, body)
        assert any(rec.exc_info is not None for rec in caplog.records), route
