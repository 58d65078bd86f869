"""`stockade can-i` answers as the gate would: each question here is put to can-i and to a real
gate (the production `Gate.handle` over the same home, `tests/gatehelp.py`) and both verdicts
must agree. Covers the gate's checks beyond the engine: the roles the manifest declared, the
REST routes no app may ever reach, a mapped REST route decided as the bridge action it amounts
to, and `--arg` values read as the text an app sends."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)
from gatehelp import GateRig, build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home

APP = "roler"
ASKED = ["roles.assign", "server.rest", "users.read", "users.create"]

POLICY = f'''
schema = 1
name = "p"
[[rule]]
id = "roler-roles"
effect = "permit"
apps = ["{APP}"]
actions = ["roles.assign"]
[rule.when]
roles = ["bot", "support"]
[[rule]]
id = "roler-read"
effect = "permit"
apps = ["{APP}"]
actions = ["users.read"]
[[rule]]
id = "roler-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/users.create", "POST /api/v1/login",
               "POST /api/v1/roles.addUserToRole"]
rest_fields = ["user", "password"]
[[rule]]
id = "roler-create"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "q"
apps = ["{APP}"]
action = "roles.assign"
limit = 50
window = "1h"
[[quota]]
id = "q-create"
apps = ["{APP}"]
action = "users.create"
limit = 50
window = "1h"
'''


def _home(home: Path, grants: list[str] | None = None) -> tuple[Home, str]:
    """A home with the app `roler` installed (roles.assign declares the role `bot` only);
    returns it and the app's own server user id."""
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "p", POLICY)
    folder = write_app(h.root / "src", APP, ASKED, [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    toml = (folder / "app.toml").read_text().replace(
        'reason = "test needs roles.assign"', 'reason = "test needs roles.assign"\nroles = ["bot"]')
    (folder / "app.toml").write_text(toml)
    rec = install(h, folder, grants)
    assert rec.manifest.declared_roles("roles.assign") == frozenset({"bot"})
    assert rec.app_user_id is not None
    return h, rec.app_user_id


def _gate(rig: GateRig, action: str, args: dict[str, Any]) -> tuple[bool, str]:
    """The real gate's verdict: allowed, or the refusal's text."""
    try:
        rig.gate.handle(rig.session, action, args)
    except GateError as exc:
        return False, f"{exc.code}: {exc.message}"
    return True, ""


def _can_i(cli: Run, action: str, *argv: str) -> tuple[bool, dict[str, Any]]:
    r = cli("can-i", APP, action, *argv, "--json")
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout)
    assert (r.exit_code == 0) is doc["allowed"]
    return doc["allowed"], doc


def test_can_i_refuses_an_undeclared_role_as_the_gate_does(cli: Run, home: Path) -> None:
    h, me = _home(home)
    rig = build_rig(h, SystemClock(), APP)
    # The policy permits `support`, the manifest declares only `bot`: the operator consented
    # to `bot` alone, and the gate refuses before the policy is asked.
    ok, why = _gate(rig, "roles.assign", {"user_id": me, "role": "support"})
    said, doc = _can_i(cli, "roles.assign", "--arg", f"user_id={me}", "--arg", "role=support")
    assert not ok and "not declared" in why
    assert said is ok, doc
    assert "not declared" in doc["message"] and doc["code"] == "permission_denied"
    # The declared role: both say yes.
    assert _gate(rig, "roles.assign", {"user_id": me, "role": "bot"})[0] is True
    assert _can_i(cli, "roles.assign", "--arg", f"user_id={me}", "--arg", "role=bot")[0] is True


def test_can_i_decides_a_mapped_route_as_its_bridge_action(cli: Run, home: Path) -> None:
    h, me = _home(home, ["roles.assign", "server.rest", "users.read"])
    rig = build_rig(h, SystemClock(), APP)
    body = {"username": "x1", "name": "X", "email": "x@e.test", "password": "pw12345678"}
    # The policy lists the route, but users.create is not granted: the gate
    # decides the route as users.create and refuses.
    args = {"method": "POST", "route": "/api/v1/users.create", "body": body}
    ok, why = _gate(rig, "rest.call", args)
    said, doc = _can_i(cli, "rest.call", "--arg", "method=POST", "--arg",
                       "route=/api/v1/users.create", "--arg", f"body={json.dumps(body)}")
    assert not ok and "lacks permission 'users.create'" in why
    assert said is ok, doc
    assert "users.create" in doc["message"]
    # A mapped route the bridge action allows: both yes (the route's role is a declared one),
    # and a declared-roles refusal reached through the route is the gate's too.
    for role, allowed in (("bot", True), ("support", False)):
        body = {"userId": me, "roleName": role}
        args = {"method": "POST", "route": "/api/v1/roles.addUserToRole", "body": body}
        ok, why = _gate(rig, "rest.call", args)
        said, doc = _can_i(cli, "rest.call", "--arg", "method=POST", "--arg",
                           "route=/api/v1/roles.addUserToRole", "--arg",
                           f"body={json.dumps(body)}")
        assert ok is allowed, why
        assert said is ok, doc


def test_can_i_refuses_a_never_route_as_the_gate_does(cli: Run, home: Path) -> None:
    h, _me = _home(home)
    rig = build_rig(h, SystemClock(), APP)
    # A permit lists POST /api/v1/login (lint STK035 is only a warning, so the policy loads),
    # yet no app may ever mint credentials: the gate refuses whatever the policy lists.
    args = {"method": "POST", "route": "/api/v1/login", "body": {"user": "a", "password": "b"}}
    ok, why = _gate(rig, "rest.call", args)
    said, doc = _can_i(cli, "rest.call", "--arg", "method=POST", "--arg",
                       "route=/api/v1/login", "--arg", 'body={"user":"a","password":"b"}')
    assert not ok and "never reachable" in why
    assert said is ok, doc
    assert "never reachable" in doc["message"] and "[guardrail]" in doc["message"]


@pytest.mark.parametrize("spelling", ["username=12345", 'username:="12345"'])
def test_can_i_arg_is_the_text_an_app_sends(cli: Run, home: Path, spelling: str) -> None:
    h, _me = _home(home)
    rig = build_rig(h, SystemClock(), APP)
    # An app's `ctx.users.create("12345", ...)` sends the username as a string: `--arg
    # username=12345` must ask the same (it once asked with the number 12345: "no").
    said, doc = _can_i(cli, "users.create", "--arg", spelling, "--arg", "name=Digits",
                       "--arg", "type=bot")
    ok, why = _gate(rig, "users.create", {"username": "12345", "name": "Digits", "type": "bot"})
    assert ok, why
    assert said is ok, doc


def test_can_i_arg_json_spellings(cli: Run, home: Path) -> None:
    _home(home)
    # `key:=JSON` is JSON: a number stays a number (and the engine refuses it as an id).
    r = cli("can-i", APP, "roles.assign", "--arg", "user_id:=12345", "--arg", "role=bot",
            "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["args"]["user_id"] == 12345
    assert "user_id must be a non-empty string" in doc["message"]
    # An object or a list after `=` is still JSON (as before), a comma list still a list.
    r = cli("can-i", APP, "rest.call", "--arg", "method=POST", "--arg",
            "route=/api/v1/login", "--arg", 'body={"user":"a"}', "--json")
    assert json.loads(r.stdout)["args"]["body"] == {"user": "a"}
    r = cli("can-i", APP, "users.create", "--arg", "username=007", "--arg", "name=true",
            "--arg", "type=bot", "--arg", "roles=bot,x", "--arg", "custom_fields:={}",
            "--json")
    assert json.loads(r.stdout)["args"] == {"username": "007", "name": "true", "type": "bot",
                                           "roles": ["bot", "x"], "custom_fields": {}}
    bad = cli("can-i", APP, "users.get_by_username", "--arg", "username:={oops")
    assert bad.exit_code == 2 and "not JSON" in bad.stderr
