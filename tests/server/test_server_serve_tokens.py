"""`stockade serve --list-tokens USERNAME` / `--revoke-tokens USERNAME`: an operator sees which
REST tokens a server user holds (never the tokens) and takes them all back, audited before the
act (DESIGN rule 14). Before: a token `--mint-token` printed never expired, minting again left
the old one valid, and no command listed or revoked them (only deactivating the user did)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from test_server_serve_cmd import root
from typer.testing import CliRunner

from host.cli.serve_cmd import build_server
from host.clock import ManualClock
from host.home import Home
from host.ledger.audit import open_readonly
from host.server.personal_tokens import verify


def _serve(home: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(root, ["--home", str(home), "serve", *args])
    return r.exit_code, r.stdout


def test_an_operator_lists_and_revokes_every_minted_service_token(tmp_path: Path) -> None:
    code, out = _serve(tmp_path, "--mint-token", "svc", "--json")
    assert code == 0, out
    first = json.loads(out)
    code, second = _serve(tmp_path, "--mint-token", "svc")
    uid, tokens = first["user_id"], [first["token"], second.strip()]
    server = build_server(Home(tmp_path), ManualClock())
    assert all(verify(server.db, uid, t, time.time()) == uid for t in tokens)  # minting again ends none

    code, out = _serve(tmp_path, "--list-tokens", "SVC", "--json")  # any case, as sign-in
    assert code == 0, out
    listed = json.loads(out)
    assert listed["user_id"] == uid
    assert [(t["name"], t["kind"]) for t in listed["tokens"]] == [("service", "service")] * 2
    assert not any(t in out for t in tokens)

    code, out = _serve(tmp_path, "--revoke-tokens", "svc")
    assert code == 0 and "revoked 2 REST token(s) of svc" in out
    assert [verify(server.db, uid, t, time.time()) for t in tokens] == [None, None]
    code, out = _serve(tmp_path, "--list-tokens", "svc")
    assert code == 0 and "0 token(s)" in out

    log = open_readonly(Home(tmp_path).host_store, ManualClock())
    try:
        bodies = [e.body for e in log.tail(10)]
        assert log.verify().ok
    finally:
        log.close()
    kinds = [b["kind"] for b in bodies]
    at = kinds.index("operator.revoke_tokens")  # recorded before it acted, its outcome after
    assert bodies[at]["detail"] == "every REST token of 'svc'"
    assert kinds[at + 1] == "operator.outcome" and bodies[at + 1]["ok"] is True
    assert "2 REST token(s)" in bodies[at + 1]["detail"]
    assert "operator.list_tokens" not in kinds  # a read is no act
    assert all(t not in json.dumps(bodies) for t in tokens)


def test_revoking_an_unknown_users_tokens_is_refused_and_recorded(tmp_path: Path) -> None:
    code, _ = _serve(tmp_path, "--revoke-tokens", "nobody")
    assert code == 2
    assert _serve(tmp_path, "--list-tokens", "nobody")[0] == 2
    log = open_readonly(Home(tmp_path).host_store, ManualClock())
    try:
        bodies = [e.body for e in log.tail(5)]
    finally:
        log.close()
    assert [b["kind"] for b in bodies][-2:] == ["operator.revoke_tokens", "operator.outcome"]
    assert bodies[-1]["ok"] is False


def test_token_options_go_one_at_a_time(tmp_path: Path) -> None:
    code, _ = _serve(tmp_path, "--mint-token", "svc", "--revoke-tokens", "svc")
    assert code == 2
    server = build_server(Home(tmp_path), ManualClock())
    assert server.db.conn().execute("SELECT count(*) FROM personal_tokens").fetchone()[0] == 0


def test_a_token_name_reaches_the_terminal_inert(tmp_path: Path) -> None:
    """A token's name is its holder's words (any REST user names its personal tokens): the
    listing shows an escape sequence in it as text, never sends it to the terminal."""
    from host.server.personal_tokens import mint_named

    code, out = _serve(tmp_path, "--mint-token", "svc", "--json")
    assert code == 0, out
    server = build_server(Home(tmp_path), ManualClock())
    mint_named(server.db, json.loads(out)["user_id"], "ci\x1b[2J\x1b]0;owned\x07", 1.0)
    code, out = _serve(tmp_path, "--list-tokens", "svc")
    assert code == 0, out
    assert "\x1b" not in out and "\x07" not in out
    assert "ci\\x1b[2J" in out  # shown as its escape
    json_out = json.loads(_serve(tmp_path, "--list-tokens", "svc", "--json")[1])
    assert "ci\x1b[2J\x1b]0;owned\x07" in [t["name"] for t in json_out["tokens"]]  # exact
