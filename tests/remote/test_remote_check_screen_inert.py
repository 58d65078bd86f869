"""What a workspace says about itself reaches the operator's screen through `stockade rocketchat
check` and `stockade doctor`: its version (`GET /api/info`), the service account's username and
roles (`GET me`), and the text of its refusals. A hostile workspace (or whatever answers in its
place) wrote terminal escapes there (clear the screen, move the cursor, retitle the window) and
newlines that start a line of its own looking like the host's (DESIGN rule 12)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from rcfake import FakeWorkspace, remote_on
from typer.testing import CliRunner

from host import doctor
from host.cli import rocketchat_cmd
from host.home import Home
from host.server.remote import config

ESC = "\x1b[2J\x1b[1;1H"  # clear the screen, cursor home
FAKE_LINE = "\nworkspace https://rc.example: reachable, version 7.0.0"
BIDI = "\u202e"

root = typer.Typer()


@root.callback()
def _main(ctx: typer.Context, home: str = typer.Option(..., "--home")) -> None:
    ctx.obj = Home(Path(home))


rocketchat_cmd.register(root)


def _hostile(tmp_path: Path, *, refuse: bool = False) -> Any:
    me = {"_id": "svc", "username": f"svc{ESC}{BIDI}", "roles": ["user", f"r{ESC}{FAKE_LINE}"]}
    perms = (400, {"success": False, "error": f"nope{ESC}{FAKE_LINE}"}) if refuse else \
        (200, {"update": []})
    fake = FakeWorkspace({"GET me": lambda q, b: (200, me),
                          "GET permissions.listAll": lambda q, b: perms,
                          "POST users.createToken": lambda q, b: (200, {"data": {
                              "authToken": "t"}})})
    real = fake.handle

    def handle(req: Any) -> Any:
        if req.url.path == "/api/info":
            return httpx.Response(200, json={"version": f"6.0{ESC}{FAKE_LINE}"})
        return real(req)
    rs = remote_on(fake, tmp_path / "host")
    rs.client.http = httpx.Client(base_url=rs.client.base, transport=httpx.MockTransport(handle))
    return rs


def _assert_inert(text: str) -> None:
    assert "\x1b" not in text and BIDI not in text
    for row in text.splitlines():
        assert not row.startswith("workspace https://rc.example"), row


@pytest.mark.parametrize("refuse", [False, True], ids=["check", "refusal-text"])
def test_rocketchat_check_shows_workspace_text_inert(tmp_path: Path, refuse: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "open_remote", lambda home, clock: _hostile(tmp_path,
                                                                           refuse=refuse))
    r = CliRunner().invoke(root, ["--home", str(tmp_path), "rocketchat", "check"])
    assert "6.0" in r.stderr
    _assert_inert(r.stderr)


def test_doctor_workspace_checks_are_inert(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "open_remote", lambda home, clock: _hostile(tmp_path))
    monkeypatch.setattr(config, "connected", lambda home: True)
    checks = doctor.workspace_checks(Home(tmp_path))
    assert checks
    for c in checks:
        _assert_inert(c.detail)


@pytest.mark.parametrize("me,perms,info", [
    ({"_id": "svc", "roles": 5}, {"update": []}, {"version": "7"}),
    ({"_id": "svc", "roles": ["user"]}, {"update": [{"_id": "create-user", "roles": 5}]},
     {"version": "7"}),
    ({"_id": "svc", "roles": ["user"]}, {"update": [{"_id": "x", "roles": [{"a": 1}]}]},
     {"version": "7"}),
    ({"_id": "svc", "roles": ["user"]}, {"update": 7}, {"info": "hidden"}),
], ids=["roles-number", "perm-roles-number", "perm-roles-objects", "update-number"])
def test_check_reads_odd_types_without_a_traceback(tmp_path: Path, me: Any, perms: Any,
                                                   info: Any) -> None:
    """`check_account` never raises for a workspace problem: a field of another type than
    Rocket.Chat's stopped `rocketchat check` and `doctor` with a traceback."""

    from host.server.remote.permcheck import check_account
    fake = FakeWorkspace({"GET me": lambda q, b: (200, me),
                          "GET permissions.listAll": lambda q, b: (200, perms),
                          "POST users.createToken": lambda q, b: (200, {"data": {
                              "authToken": "t"}})})
    rs = remote_on(fake, tmp_path / "host")
    real = fake.handle

    def handle(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=info) if req.url.path == "/api/info" else real(req)
    rs.client.http = httpx.Client(base_url=rs.client.base, transport=httpx.MockTransport(handle))
    rep = check_account(rs)
    assert rep.reachable and "create-user" in rep.missing
