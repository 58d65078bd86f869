from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from host.cli.serve_cmd import build_server, is_loopback, register
from host.clock import ManualClock
from host.home import Home
from host.server import SYSTEM
from host.server.personal_tokens import verify

# A root with only `serve` mounted (the real root mounts every group; this keeps the test about
# this command), with the same --home callback shape as host/cli/main.py.
root = typer.Typer()


@root.callback()
def _main(ctx: typer.Context, home: str = typer.Option(..., "--home")) -> None:
    ctx.obj = Home(Path(home))


register(root)


def test_mint_token_prints_once_and_stores_a_digest(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(root, ["--home", str(tmp_path), "serve", "--mint-token", "svc", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    server = build_server(Home(tmp_path), ManualClock())
    assert verify(server.db, out["user_id"], out["token"], time.time()) == out["user_id"]
    assert "admin" in server.users_get(SYSTEM, out["user_id"])["roles"]
    for store in tmp_path.glob("*.db*"):  # the server's data, its WAL, every store
        assert out["token"].encode() not in store.read_bytes(), store.name
    r2 = runner.invoke(root, ["--home", str(tmp_path), "serve", "--mint-token", "svc"])
    assert r2.exit_code == 0
    assert r2.stdout.strip() != out["token"]  # a new token each time, same user
    assert verify(server.db, out["user_id"], r2.stdout.strip(), time.time()) == out["user_id"]


def test_minting_an_admin_token_is_an_audited_operator_act(tmp_path: Path) -> None:
    """An admin credential changes who holds the workspace's powers (DESIGN rule 14): the
    chain names who minted one and for whom, and never the token. A refused mint is recorded
    as refused. (Before: no record at all.)"""
    from host.ledger.audit import open_readonly

    runner = CliRunner()
    r = runner.invoke(root, ["--home", str(tmp_path), "serve", "--mint-token", "svc", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    server = build_server(Home(tmp_path), ManualClock())
    server.users_create(SYSTEM, "carla", "Carla", "user")
    assert runner.invoke(root, ["--home", str(tmp_path), "serve", "--mint-token",
                                "carla"]).exit_code == 2
    log = open_readonly(Home(tmp_path).host_store, ManualClock())
    try:
        bodies = [e.body for e in log.tail(10)]
        assert log.verify().ok
    finally:
        log.close()
    mints = [b for b in bodies if b["kind"] == "operator.mint_token"]
    assert [m["detail"] for m in mints] == ["admin service token for 'svc'",
                                           "admin service token for 'carla'"]
    outcomes = [b for b in bodies if b["kind"] == "operator.outcome"]
    assert [o["ok"] for o in outcomes] == [True, False]
    assert out["user_id"] in outcomes[0]["detail"]
    assert all(out["token"] not in json.dumps(b) for b in bodies)


@pytest.mark.parametrize("deactivated", [False, True])
def test_mint_token_never_promotes_or_revives_an_existing_user(tmp_path: Path,
                                                               deactivated: bool) -> None:
    server = build_server(Home(tmp_path), ManualClock())
    colleague = server.users_create(SYSTEM, "carla", "Carla", "user",
                                    roles=["admin"] if deactivated else [])
    if deactivated:
        server.users_set_active(SYSTEM, colleague["id"], False)
    r = CliRunner().invoke(root, ["--home", str(tmp_path), "serve", "--mint-token", "carla"])
    assert r.exit_code == 2 and "never by promoting" in r.output
    after = server.users_get(SYSTEM, colleague["id"])
    assert after["roles"] == colleague["roles"] and after["active"] is (not deactivated)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.4", "example.org", "::"])
def test_refuses_non_loopback_binds(tmp_path: Path, host: str) -> None:
    r = CliRunner().invoke(root, ["--home", str(tmp_path), "serve", "--host", host])
    assert r.exit_code == 2
    assert "loopback" in r.output


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")
