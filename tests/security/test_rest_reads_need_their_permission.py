"""A REST route with no bridge action that reads what a bridge permission guards needs that
permission granted too (DESIGN rule 11; `policies.restmap.READS`, checked in the grant step
`policies.grants.grant_refusal` that the gate, `stockade can-i` and the author harness share).

Attack (held before the fix): an app the operator granted `server.rest` but not `users.read`,
under a policy listing `GET /api/v1/users.list`, read every user's id, name and roles (which
users are admins) through `ctx.rest`, while `GET /api/v1/users.info` of the same user, the
bridge's `users.get`, was refused for lacking `users.read`. The real gate over a real home
(`tests/gatehelp.py`) with the host's own `rest.call` action (`host.supervise.restcall`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import GateRig, build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.keys.keyring import Keyring
from host.server.principals import SYSTEM
from host.supervise.restcall import rest_call

APP = "lister"
POLICY = f'''
schema = 1
name = "lister"
[[rule]]
id = "lister-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/users.list", "GET /api/v1/users.info",
               "GET /api/v1/livechat/inquiries.list", "GET /api/v1/roles.list"]
rest_fields = []
[[rule]]
id = "lister-read"
effect = "permit"
apps = ["{APP}"]
actions = ["users.read", "livechat.read"]
'''


def _rig(tmp_path: Path, grants: list[str]) -> GateRig:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "lister", POLICY)
    folder = write_app(home.root / "src", APP, ["server.rest", "users.read", "livechat.read"],
                       [], "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    install(home, folder, grants)
    rig = build_rig(home, SystemClock(), APP)
    keyring = Keyring.open(home.keys_dir)
    rig.gate.host_actions["rest.call"] = lambda s, a, op, f: rest_call(
        rig.server._server, rig.installs, keyring, s, a, op, f)
    return rig


def _get(rig: GateRig, route: str, body: dict[str, Any] | None = None) -> Any:
    args: dict[str, Any] = {"method": "GET", "route": route}
    if body is not None:
        args["body"] = body
    return rig.gate.handle(rig.session, "rest.call", args)


def test_a_route_reading_users_needs_users_read(tmp_path: Path) -> None:
    rig = _rig(tmp_path, ["server.rest"])
    boss = rig.server._server.users_create(SYSTEM, "boss", "Boss", "user", roles=["admin"])
    with pytest.raises(GateError) as mapped:
        _get(rig, "/api/v1/users.info", {"userId": boss["id"]})
    assert mapped.value.code == "permission_denied" and "'users.read'" in str(mapped.value)
    for route in ("/api/v1/users.list", "/users.list"):
        with pytest.raises(GateError) as listed:
            # Before: {"status": 200, "body": {"users": [..., boss: roles ["admin"]]}}.
            _get(rig, route)
        assert listed.value.code == "permission_denied", route
        assert "'users.read'" in str(listed.value) and "users.list" in str(listed.value)
    with pytest.raises(GateError) as queue:
        _get(rig, "/api/v1/livechat/inquiries.list")
    assert "'livechat.read'" in str(queue.value)
    refusals = [e.body for e in rig.ledger.audit.tail(50)
                if e.body.get("kind") == "decision" and e.body.get("route")]
    assert refusals and all(r["allowed"] is False for r in refusals)
    assert refusals[-1]["code"] == "permission_denied"
    # A route that reads nothing a permission guards still needs only server.rest.
    assert _get(rig, "/api/v1/roles.list")["status"] == 200


def test_with_the_permission_granted_the_route_is_served(tmp_path: Path) -> None:
    """The control: the same call passes once users.read is granted, so the refusal above is
    the grant's, not the policy's."""
    rig = _rig(tmp_path, ["server.rest", "users.read"])
    out = _get(rig, "/api/v1/users.list")
    assert out["status"] == 200
    assert "boss" not in {u["username"] for u in out["body"]["users"]}  # none made here
    assert any(u["username"] == f"app.{APP}" for u in out["body"]["users"])


def test_policy_test_decides_such_a_route_as_the_gate(tmp_path: Path) -> None:
    """`stockade policy test` (`policies.cases`): a case whose grants lack users.read is
    refused as the gate refuses it; its default grants hold what the route reads."""
    from policies.cases import run_dir

    (tmp_path / "lister.toml").write_text(POLICY)
    case = ('[[case]]\nname = "{0}"\napp = "{1}"\naction = "rest.call"\n'
            'args = {{ method = "GET", route = "/api/v1/users.list", body = {{}} }}\n{2}'
            'expect = "{3}"\n')
    (tmp_path / "lister.cases.toml").write_text(
        "schema = 1\n" + case.format("rest-only", APP, 'grants = ["server.rest"]\n',
                                     "permission_denied")
        + case.format("default", APP, "", "allow"))
    results, problems = run_dir(tmp_path)
    assert problems == [], problems
    assert {r.name: r.ok for r in results} == {"rest-only": True, "default": True}, \
        [(r.name, r.got, r.message) for r in results]
