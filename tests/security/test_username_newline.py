"""A name the server checks is the whole name (DESIGN rules 10 and 12).

Attack (held before the fix): the server's name checks (`host/server/limits.py`) used
`re.match` with a pattern ending in `$`, which also matches before a final newline. An app
created "support\\n": the policy's forbid pattern (an RE2 full match) did not match it, its
case-folded form was unique, and it displayed as the existing human "support". Through the
real gate, ledger and embedded server.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError, ServerRefused
from host.home import Home
from host.server.principals import SYSTEM

APP = "maker"
POLICY = f'''
schema = 1
name = "maker"
[[rule]]
id = "maker-create"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
user_types = ["user"]
[[rule]]
id = "maker-no-staff-names"
effect = "forbid"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
username_pattern = "admin|root|support"
[[quota]]
id = "maker-create-q"
apps = ["{APP}"]
action = "users.create"
limit = 5
window = "1h"
'''


def test_a_trailing_newline_cannot_make_a_second_support(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "maker", POLICY)
    install(home, write_app(home.root / "src", APP, ["users.create"], [],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(home, SystemClock(), APP)
    rig.server._server.users_create(SYSTEM, "support", "Support Desk", "user")
    with pytest.raises(GateError, match="forbidden by rule"):
        rig.gate.handle(rig.session, "users.create",
                        {"username": "support", "name": "Support Desk", "type": "user"})
    with pytest.raises(ServerRefused) as exc:
        rig.gate.handle(rig.session, "users.create",
                        {"username": "support\n", "name": "Support Desk", "type": "user"})
    assert exc.value.code == "invalid_argument" and "username" in str(exc.value)
    assert rig.server._server.count_users_created_by(APP) == 0
    (outcome,) = [e.body for e in rig.ledger.audit.tail(1)]
    assert outcome["kind"] == "outcome" and outcome["ok"] is False  # audited as refused
