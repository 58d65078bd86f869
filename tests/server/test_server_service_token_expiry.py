"""Admin service tokens (`stockade serve --mint-token NAME`) expire, and `--replace` rotates one.

Before: a minted token never expired (a copy left in a CI log or a backup was an admin key for
good), minting again left every earlier token valid, and service tokens were counted as the
user's own personal tokens (20 mints without a revoke left the account none of its own)."""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from servehelp import in_thread
from test_server_serve_cmd import root
from typer.testing import CliRunner

from host.cli.serve_cmd import build_server
from host.clock import ManualClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.server.embedded import EmbeddedServer
from host.server.rest import create_app

DAY = 86_400.0


def _serve(home: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(root, ["--home", str(home), "serve", *args])
    return r.exit_code, r.stdout + r.stderr


def _mint(home: Path, *args: str) -> dict[str, str]:
    code, out = _serve(home, "--mint-token", "svc", "--json", *args)
    assert code == 0, out
    minted: dict[str, str] = json.loads(out[:out.rindex("}") + 1])
    return minted


@contextmanager
def _loopback(server: EmbeddedServer) -> Iterator[httpx.Client]:
    """The REST API as `serve --rest-in-host` serves it, on a free loopback port."""
    with in_thread(uvicorn.Config(create_app(server), host="127.0.0.1", port=0,
                                  log_level="warning", lifespan="off")) as url, \
            httpx.Client(base_url=url, timeout=10) as c:
        yield c


def _me(c: httpx.Client, uid: str, token: str) -> httpx.Response:
    return c.get("/api/v1/me", headers={"X-User-Id": uid, "X-Auth-Token": token})


def test_a_minted_token_expires_and_is_then_refused_exactly_like_an_unknown_one(
        tmp_path: Path) -> None:
    """A token minted with no `--expires-in` has the default lifetime; past it the real REST
    server answers 401 with the bytes it answers an unknown token (nothing says "expired")."""
    minted = _mint(tmp_path)
    uid, token = minted["user_id"], minted["token"]
    clock = ManualClock(time.time())
    server = build_server(Home(tmp_path), clock)
    try:
        with _loopback(server) as c:
            assert _me(c, uid, token).status_code == 200
            clock.advance(366 * DAY)  # past the longest lifetime a service token can have
            expired = _me(c, uid, token)
            unknown = _me(c, uid, secrets.token_urlsafe(32))
            assert expired.status_code == unknown.status_code == 401
            assert expired.content == unknown.content
            assert ({k: v for k, v in expired.headers.items() if k != "date"}
                    == {k: v for k, v in unknown.headers.items() if k != "date"})
    finally:
        server.close()


def test_expires_in_is_stored_checked_and_listed(tmp_path: Path) -> None:
    minted = _mint(tmp_path, "--expires-in", "12h")
    assert minted["expires_at"].endswith("Z")
    uid, token = minted["user_id"], minted["token"]
    clock = ManualClock(time.time())
    server = build_server(Home(tmp_path), clock)
    try:
        with _loopback(server) as c:
            clock.advance(11.9 * 3600)
            assert _me(c, uid, token).status_code == 200
            clock.advance(0.2 * 3600)
            assert _me(c, uid, token).status_code == 401
    finally:
        server.close()
    code, out = _serve(tmp_path, "--list-tokens", "svc", "--json")
    assert code == 0, out
    listed = json.loads(out)["tokens"]
    assert [(t["kind"], t["expires_at"]) for t in listed] == [("service", minted["expires_at"])]
    code, out = _serve(tmp_path, "--list-tokens", "svc")
    assert code == 0 and f"expires {minted['expires_at']}" in out


@pytest.mark.parametrize("bad", ["0d", "-1d", "90", "1y", "366d", "53w", "8785h", "1e3d",
                                 "\u0669d", " 90d", "90 d", "99999999999999999999999d", ""])
def test_a_bad_expires_in_is_refused_and_nothing_is_minted(tmp_path: Path, bad: str) -> None:
    code, out = _serve(tmp_path, "--mint-token", "svc", "--expires-in", bad)
    assert code == 2, out
    assert "--expires-in" in out and "at most 365d" in out
    assert not (tmp_path / "host.db").exists() or _held(tmp_path) == 0


def _held(home: Path) -> int:
    server = build_server(Home(home), ManualClock())
    try:
        return int(server.db.conn().execute(
            "SELECT count(*) FROM personal_tokens").fetchone()[0])
    finally:
        server.close()


def test_expires_in_and_replace_go_only_with_mint_token(tmp_path: Path) -> None:
    for args in (["--expires-in", "1d"], ["--replace"],
                 ["--list-tokens", "svc", "--replace"]):
        code, out = _serve(tmp_path, *args)
        assert code == 2 and "only with --mint-token" in out, (args, out)


def test_replace_ends_the_earlier_service_tokens_in_the_minting_transaction(
        tmp_path: Path) -> None:
    """`--replace` leaves exactly the new service token valid (the user's own personal tokens
    stay), audited like a mint; against the real REST server the old token is a 401."""
    from host.server.personal_tokens import mint_named

    first, second = _mint(tmp_path), _mint(tmp_path)
    uid = first["user_id"]
    server = build_server(Home(tmp_path), ManualClock(time.time()))
    own = mint_named(server.db, uid, "service", time.time())  # the user's own, same name
    newest = _mint(tmp_path, "--replace", "--expires-in", "90d")
    assert newest["replaced"] == 2  # type: ignore[comparison-overlap]
    try:
        with _loopback(server) as c:
            assert _me(c, uid, first["token"]).status_code == 401
            assert _me(c, uid, second["token"]).status_code == 401
            assert _me(c, uid, newest["token"]).status_code == 200
            assert _me(c, uid, own).status_code == 200
    finally:
        server.close()
    listed = json.loads(_serve(tmp_path, "--list-tokens", "svc", "--json")[1])["tokens"]
    assert sorted(t["kind"] for t in listed) == ["personal", "service"]
    log = open_readonly(Home(tmp_path).host_store, ManualClock())
    try:
        bodies = [e.body for e in log.tail(4)]
        assert log.verify().ok
    finally:
        log.close()
    assert [b["kind"] for b in bodies][-2:] == ["operator.mint_token", "operator.outcome"]
    assert "replacing its earlier service tokens" in bodies[-2]["detail"]
    assert bodies[-1]["ok"] is True and "2 earlier service token(s) revoked" in \
        bodies[-1]["detail"]
    assert newest["token"] not in json.dumps(bodies)


def test_a_replace_that_fails_to_store_the_new_token_leaves_the_old_one_valid(
        tmp_path: Path) -> None:
    """No window with no token: the earlier ones end in the transaction that stores the new
    one, so a store that refuses the new row leaves the old token valid (a revoke, then a mint,
    as the docs told operators to rotate, leaves none)."""
    first = _mint(tmp_path)
    server = build_server(Home(tmp_path), ManualClock(time.time()))
    try:
        with server.db.write() as c:  # the store refuses the next service token's row
            c.execute("CREATE TRIGGER full BEFORE INSERT ON personal_tokens BEGIN"
                      " SELECT RAISE(ABORT, 'database or disk is full'); END")
        code, out = _serve(tmp_path, "--mint-token", "svc", "--replace")
        assert code == 1, out  # the CLI's internal-error line (exit 1), not a usage error
        from host.server.personal_tokens import verify

        uid = first["user_id"]
        assert verify(server.db, uid, first["token"], time.time()) == uid
    finally:
        server.close()


def test_service_tokens_do_not_use_up_the_users_own_personal_tokens(tmp_path: Path) -> None:
    from host.server.personal_tokens import MAX_PERSONAL_TOKENS, mint_named

    for _ in range(3):
        uid = _mint(tmp_path)["user_id"]
    server = build_server(Home(tmp_path), ManualClock())
    try:
        for i in range(MAX_PERSONAL_TOKENS):  # before: the 18th was refused
            mint_named(server.db, uid, f"ci-{i}", 1.0)
    finally:
        server.close()
