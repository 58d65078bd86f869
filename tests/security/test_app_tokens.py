"""App capability tokens (issue 19): re-minting a token for an install revokes the old one; the
operator can list and revoke them (`stockade app tokens APP [--revoke JTI|all]`); a revoked
token stays revoked for good, also when the app's deactivated user is reactivated. Through a real
serving `Host` and the real CLI.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app
from typer.testing import CliRunner

from host.cli.main import root
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.principals import SYSTEM
from host.supervise.child import ChildDied
from host.supervise.supervisor import AppRunner

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok:" + str(event.get("n"))
'''


def _tokens(home: Home, *args: str) -> dict[str, Any]:
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "tokens", "tok", *args,
                                  "--json"])
    assert r.exit_code == 0, (args, r.stdout, r.exception)
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (ChildDied, RuntimeError):  # an event to a child that just died
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "tok", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    host = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    yield home, host
    host.stop()


def _runner(host: Host) -> AppRunner:
    """The app's runner (the watcher may be between stopping one and starting the next)."""
    deadline = time.monotonic() + 10
    while (runner := next(iter(host.runners.values()), None)) is None:
        assert time.monotonic() < deadline, "the app is not running"
        time.sleep(0.02)
    return runner


def _event(host: Host, n: int) -> object:
    return _runner(host).submit("livechat.room_started", {"n": n}, 5.0).result(15)


def _live(listing: dict[str, Any]) -> list[str]:
    return [t["jti"] for t in listing["tokens"] if t["revoked_at"] is None]


def test_re_minting_revokes_the_old_token(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    assert _event(host, 1) == "ok:1"
    first = _runner(host).session.claims.jti  # type: ignore[union-attr]
    assert _live(_tokens(home)) == [first]
    child = _runner(host).child
    assert child is not None
    os.kill(child.pid, signal.SIGKILL)  # the child dies; the next event gets a new one
    _until(lambda: _event(host, 2) == "ok:2", "the app to serve again", timeout=20)
    second = _runner(host).session.claims.jti  # type: ignore[union-attr]
    assert second != first
    listing = {t["jti"]: t for t in _tokens(home)["tokens"]}
    assert _live(_tokens(home)) == [second]
    assert listing[first]["reason"] == "re-minted"


def test_the_operator_revokes_a_token_and_the_child_holding_it_stops(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    assert _event(host, 1) == "ok:1"
    old_runner = _runner(host)
    first = old_runner.session.claims.jti  # type: ignore[union-attr]
    out = _tokens(home, "--revoke", first)
    assert out["revoked"] == [first] and _live(out) == []
    _until(lambda: next(iter(host.runners.values()), None) is not old_runner,
           "the child holding the revoked token to be stopped")
    assert _event(host, 2) == "ok:2"  # started again with a new token
    assert _live(_tokens(home)) == [_runner(host).session.claims.jti]  # type: ignore[union-attr]


def test_a_deactivated_app_users_tokens_stay_revoked(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    assert _event(host, 1) == "ok:1"
    old_runner = _runner(host)
    first = old_runner.session.claims.jti  # type: ignore[union-attr]
    app_user = old_runner.install.app_user_id
    assert app_user is not None
    host.server.users_set_active(SYSTEM, app_user, False)
    _tokens(home, "--revoke", "all")
    # while the app's user is deactivated no token is minted: the app cannot start
    _until(lambda: next(iter(host.runners.values()), old_runner) is not old_runner,
           "the revoked child to stop")
    with pytest.raises(ChildDied):
        _event(host, 2)
    assert _live(_tokens(home)) == []
    host.server.users_set_active(SYSTEM, app_user, True)
    _until(lambda: _event(host, 3) == "ok:3", "the reactivated app to serve", timeout=20)
    listing = _tokens(home)
    assert first not in _live(listing) and len(_live(listing)) == 1  # a new token, not the old
    with sqlite3.connect(home.host_db) as c, pytest.raises(sqlite3.DatabaseError):
        c.execute("UPDATE token_minted SET revoked_at = NULL WHERE jti = ?", (first,))


def test_a_serving_host_revokes_the_token_of_an_app_whose_user_is_deactivated(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    assert _event(host, 1) == "ok:1"
    old_runner = _runner(host)
    first = old_runner.session.claims.jti  # type: ignore[union-attr]
    app_user = old_runner.install.app_user_id
    assert app_user is not None
    host.server.users_set_active(SYSTEM, app_user, False)  # no operator command
    _until(lambda: next(iter(host.runners.values()), old_runner) is not old_runner,
           "the host to stop the deactivated app's child")
    listing = {t["jti"]: t for t in _tokens(home)["tokens"]}
    assert listing[first]["reason"] == "app user deactivated"
    with pytest.raises(ChildDied):
        _event(host, 2)
    assert _live(_tokens(home)) == []


def test_an_old_live_token_is_revoked_by_its_jti(tmp_path: Path) -> None:
    """A live token older than the newest rows `app tokens` lists (another host re-minting its
    own 200 times since) is still found by `--revoke JTI`: before, the command said the app held
    no such token and the operator could revoke it only with `all`."""
    from host.keys.registry import MAX_LISTED, TokenRegistry
    from host.keys.tokens import Claims

    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(tmp_path / "apps", "tok", ["livechat.read"],
                                  ["livechat.room_started"], SRC))
    registry = TokenRegistry(home.host_store)

    def claims(jti: str, at: float) -> Claims:
        return Claims(app="tok", ins=rec.install_id, sid="s" * 32, gen=1, epoch=0, perms=[],
                      pol="p", iat=at, exp=at + 3600, jti=jti, kid="k1")

    now = time.time()
    registry.minted(claims("jti-host-a", now - 1000), "host-a")
    for i in range(MAX_LISTED + 1):
        registry.minted(claims(f"jti-host-b-{i}", now - 900 + i), "host-b")
    registry.close()
    assert "jti-host-a" not in {t["jti"] for t in _tokens(home)["tokens"]}  # past the listing
    out = _tokens(home, "--revoke", "jti-host-a")
    assert out["revoked"] == ["jti-host-a"]
