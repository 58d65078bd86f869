"""`stockade can-i` says no where the gate refuses whatever `any_user` says: deactivating a user
holding a privileged role, and changing another app's own user (the gate's guardrail, DESIGN
rules 10 and 11). Before, can-i answered "allowed" for both, where the gate's call was refused
(by the server, after a decision record that said allowed); SECURITY.md promises can-i answers
as the gate would. Each question is put to can-i and to a real gate over the same home."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)
from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.server.principals import SYSTEM

APP = "reacher"
POLICY = f'''
schema = 1
name = "p"
[[rule]]
id = "reach-anyone"
effect = "permit"
apps = ["{APP}"]
actions = ["users.deactivate", "livechat.set_agent_status"]
[rule.when]
any_user = true
[[quota]]
id = "q"
apps = ["{APP}"]
action = "*"
limit = 50
window = "1h"
'''


def _can_i(cli: Run, action: str, args: dict[str, str]) -> dict[str, Any]:
    argv = [a for k, v in args.items() for a in ("--arg", f"{k}={v}")]
    r = cli("can-i", APP, action, *argv, "--json")
    assert r.exit_code in (0, 1), r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    assert (r.exit_code == 0) is doc["allowed"]
    return doc


def test_can_i_refuses_what_no_policy_reaches_as_the_gate_does(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "p", POLICY)
    install(h, write_app(h.root / "src", APP, ["users.deactivate", "livechat.agents"], [],
                         "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(h, SystemClock(), APP)
    srv = rig.server._server
    boss = srv.users_create(SYSTEM, "boss", "Boss", "user", roles=["admin"])["id"]
    other = srv.create_app_user("other", "Other")["id"]
    human = srv.users_create(SYSTEM, "human", "Human", "user")["id"]
    questions = [("users.deactivate", {"user_id": boss}, False),
                 ("users.deactivate", {"user_id": other}, False),
                 ("livechat.set_agent_status", {"user_id": other, "status": "available"}, False),
                 ("users.deactivate", {"user_id": human}, True)]
    for action, args, allowed in questions:
        doc = _can_i(cli, action, args)
        try:
            rig.gate.handle(rig.session, action, dict(args))
            ok = True
        except GateError:
            ok = False
        assert ok is allowed, (action, args)
        assert doc["allowed"] is ok, (action, args, doc)
        if not allowed:
            assert doc["code"] == "guardrail", doc
