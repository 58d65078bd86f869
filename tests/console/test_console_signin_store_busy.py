"""A console sign-in while the server's store cannot take a write (another process holds its
write lock past the wait: a wedged host) is refused with a 503 page that says so, its password
never checked (each attempt is counted in the store before it is checked, and this one could
not be). Before, the page was a bare 500 and the request's traceback went to the log."""
from __future__ import annotations

import logging
import sqlite3

import httpx
import pytest
from conhelp import PASSWORD, Served

from host.server import auth
from host.server import db as server_db


def test_a_locked_store_refuses_the_console_sign_in_as_unavailable(
        served: Served, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    checked: list[str] = []
    real = auth._matches
    monkeypatch.setattr(auth, "_matches",
                        lambda stored, pw: checked.append(pw) or real(stored, pw))
    monkeypatch.setattr(server_db, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(served.server.db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    caplog.set_level(logging.INFO)
    try:
        with httpx.Client(base_url=served.url, timeout=30) as c:
            r = c.post("/console/login", data={"username": "operator", "password": PASSWORD},
                       headers={"Origin": served.url})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.status_code == 503, r.text
    assert "store cannot take the sign-in" in r.text
    assert checked == []
    assert all(rec.exc_info is None for rec in caplog.records), caplog.text
    with httpx.Client(base_url=served.url, timeout=30) as c:  # the lock gone: signed in
        r = c.post("/console/login", data={"username": "operator", "password": PASSWORD},
                   headers={"Origin": served.url})
    assert r.status_code in (200, 303), r.text
