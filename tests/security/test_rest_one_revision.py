"""A REST route that amounts to a bridge action is decided twice, as `rest.call` and as its
action: both on one policy revision. A reload landing between the two decisions made the call
run on the old revision's word for the route, under a new revision that no longer lists it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.server.principals import SYSTEM
from policies.loader import load_policy_text

APP = "reviser"
READS = f'''
[[rule]]
id = "reviser-read"
effect = "permit"
apps = ["{APP}"]
actions = ["users.read"]
'''
ROUTE = f'''
[[rule]]
id = "reviser-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/users.info"]
'''


def test_a_reload_between_the_two_decisions_decides_both_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "reviser", f'schema = 1\nname = "reviser"\n{READS}{ROUTE}')
    folder = write_app(home.root / "src", APP, ["server.rest", "users.read"], [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    install(home, folder, ["server.rest", "users.read"])
    rig = build_rig(home, SystemClock(), APP)
    carol = rig.server._server.users_create(SYSTEM, "carol", "Carol", "user")
    call = {"method": "GET", "route": "/api/v1/users.info", "body": {"userId": carol["id"]}}
    assert rig.gate.handle(rig.session, "rest.call", call)["status"] == 200  # the control

    # The operator's next revision no longer lists the route (the bridge read stays permitted).
    newer = load_policy_text(f'schema = 1\nname = "reviser"\n{READS}', "reviser.toml")
    decide = rig.gate._decide
    reloaded: list[str] = []

    def reload_after_the_routes_decision(session: Any, action: str, *a: Any, **kw: Any) -> Any:
        out = decide(session, action, *a, **kw)
        if action == "rest.call" and not reloaded:
            reloaded.append(rig.gate.policy.policy.revision)
            rig.gate.policy.policy = newer  # what a reload does, whole
        return out

    monkeypatch.setattr(rig.gate, "_decide", reload_after_the_routes_decision)
    with pytest.raises(GateError) as refused:  # before: a 200 on the old revision's word
        rig.gate.handle(rig.session, "rest.call", call)
    assert reloaded and "no rule permits" in str(refused.value), refused.value
    last = [e.body for e in rig.ledger.audit.tail(5) if e.body.get("kind") == "decision"][-1]
    assert last["action"] == "rest.call" and last["allowed"] is False
    assert last["code"] == "policy_denied"
    assert last["policy_rev"] == newer.revision != reloaded[0]
