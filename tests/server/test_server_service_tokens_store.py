"""Service tokens in the store, on SQLite and PostgreSQL: an expiry exact to the second, a cap on
how many one user holds, and the tokens minted before expiry existed (server schema 9)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from host.clock import ManualClock
from host.server import EmbeddedServer
from host.server.migrations import MIGRATIONS, _statements
from host.server.personal_tokens import (
    MAX_SERVICE_TOKENS,
    TooManyServiceTokens,
    held,
    mint_service,
    service_user,
    verify,
)


def test_a_service_token_ends_at_its_expiry_to_the_second(server: EmbeddedServer,
                                                          clock: ManualClock) -> None:
    """`expires_at` holds the exact time: a 32-bit column (PostgreSQL's REAL, which the dialect
    widens only in CREATE TABLE) would round a 2026 time to 128 s and move the end."""
    uid = service_user(server, "svc")["id"]
    clock.set(1_796_650_441.25)
    token, _ = mint_service(server.db, uid, clock.now(), 3600)
    end = clock.now() + 3600
    assert verify(server.db, uid, token, end - 1) == uid
    assert verify(server.db, uid, token, end) is None


def test_one_user_holds_few_service_tokens_and_expired_ones_make_room(
        server: EmbeddedServer, clock: ManualClock) -> None:
    uid = service_user(server, "svc")["id"]
    for _ in range(MAX_SERVICE_TOKENS):
        mint_service(server.db, uid, clock.now(), 3600)
    with pytest.raises(TooManyServiceTokens, match="--replace"):
        mint_service(server.db, uid, clock.now(), 3600)
    clock.advance(3600)  # every one of them expired: deleted by the next mint
    token, replaced = mint_service(server.db, uid, clock.now(), 3600)
    assert replaced == 0 and [k for _, k, _, _ in held(server.db, uid)] == ["service"]
    assert verify(server.db, uid, token, clock.now()) == uid


def test_tokens_minted_before_expiry_existed_become_service_tokens_that_never_expire(
        tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
              " version INTEGER NOT NULL)")
    for m in MIGRATIONS[:8]:
        for stmt in _statements(m):
            c.execute(stmt)
    c.execute("INSERT INTO schema_version VALUES (1, 8)")
    c.execute("INSERT INTO users (id, type, username, username_cf, name, created_at)"
              " VALUES ('u1', 'user', 'svc', 'svc', 'svc', 0)")
    from host.server.personal_tokens import digest

    for token, name in (("old-service", "service"), ("own-ci", "ci")):
        c.execute("INSERT INTO personal_tokens (token_hash, user_id, name, created_at, kind)"
                  " VALUES (?, 'u1', ?, 0, 'personal')", (digest(token), name))
    c.close()
    server = EmbeddedServer(path, ManualClock())
    try:
        assert sorted((n, k, e) for n, k, _, e in held(server.db, "u1")) == [
            ("ci", "personal", None), ("service", "service", None)]
        assert verify(server.db, "u1", "old-service", 4e9) == "u1"  # not cut off by an upgrade
        token, replaced = mint_service(server.db, "u1", 1.0, 3600, replace=True)
        assert replaced == 1 and verify(server.db, "u1", "old-service", 2.0) is None
        assert verify(server.db, "u1", "own-ci", 2.0) == "u1"
    finally:
        server.close()
