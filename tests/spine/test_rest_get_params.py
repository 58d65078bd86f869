"""`ctx.rest.call("GET", route, params)` on a route with no bridge action: each parameter reaches
the route as its REST query reads it. Python's `str` made `{"customFields": 1}` the text
`{'customFields': 1}` and `True` the text `True`, so `fields` was refused as malformed JSON."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from apphelp import install, write_app, write_policy
from gatehelp import build_rig

from host.clock import SystemClock
from host.home import Home
from host.keys.keyring import Keyring
from host.supervise.restcall import query_text, rest_call

APP = "paramreader"
POLICY = f'''
schema = 1
name = "params"
[[rule]]
id = "params-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call", "users.read"]
[rule.when]
rest_routes = ["GET /api/v1/users.list"]
rest_fields = ["fields", "count", "offset"]
'''


def _users_list(tmp_path: Path, params: dict[str, Any]) -> Any:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "params", POLICY)
    folder = write_app(home.root / "src", APP, ["server.rest", "users.read"], [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    install(home, folder, ["server.rest", "users.read"])
    rig = build_rig(home, SystemClock(), APP)
    keyring = Keyring.open(home.keys_dir)
    rig.gate.host_actions["rest.call"] = lambda s, a, op, f: rest_call(
        rig.server._server, rig.installs, keyring, s, a, op, f)
    return rig.gate.handle(rig.session, "rest.call",
                           {"method": "GET", "route": "/api/v1/users.list", "body": params})


def _own(out: Any) -> dict[str, Any]:
    """The app's own user in a users.list answer (the one user it sees whole)."""
    assert out["status"] == 200, out
    return next(u for u in out["body"]["users"] if u["username"] == f"app.{APP}")


def test_an_object_parameter_reaches_the_route_as_json(tmp_path: Path) -> None:
    # Before: a 400, "fields" not JSON ({'customFields': 1}).
    asked = _own(_users_list(tmp_path / "a", {"fields": {"customFields": 1}, "count": 50}))
    assert asked["customFields"] == {}
    # The control: without the projection the route leaves the field out.
    assert "customFields" not in _own(_users_list(tmp_path / "b", {"count": 50}))


def test_each_kind_of_value_is_written_as_the_rest_api_reads_it() -> None:
    assert [query_text(v) for v in ("open", True, False, 5, 1.5, {"a": 1}, ["x", 2])] == [
        "open", "true", "false", "5", "1.5", '{"a":1}', '["x",2]']
