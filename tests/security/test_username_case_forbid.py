"""A forbid's username pattern holds whatever the case of the name (DESIGN rules 2 and 10).

Attack (held before the fix): the server keeps usernames unique regardless of case and finds a
user by name regardless of case (`username_cf`), so "Support" *is* the name "support". A policy
forbidding an app the staff names `admin|root|support` (an RE2 full match, case-sensitive) let
the app create "Support" while no human held "support" yet: the gate allowed it, and a lookup of
"support" then answered the app's user. Through the real gate, ledger and embedded server; the
permit's own pattern stays case-sensitive (a permit only ever narrows by it).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import policy_rig

from host.errors import GateError
from host.server.errors import NotFound
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
username_pattern = "[A-Za-z0-9-]{{3,40}}|ext-[a-z0-9]+"
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
limit = 20
window = "1h"
'''


def test_a_forbidden_name_in_another_case_is_forbidden(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, APP, ["users.create"], {"maker": POLICY})
    for name in ("Support", "ROOT", "aDmIn"):
        with pytest.raises(GateError, match="forbidden by rule"):
            rig.gate.handle(rig.session, "users.create",
                            {"username": name, "name": "Staff", "type": "user"})
    with pytest.raises(NotFound):
        rig.server._server.users_get_by_username(SYSTEM, "support")
    assert rig.server._server.count_users_created_by(APP) == 0
    # The permit's pattern keeps its case: it narrows, and reading it folded would widen it.
    made = rig.gate.handle(rig.session, "users.create",
                           {"username": "Helper-1", "name": "Helper", "type": "user"})
    assert made["username"] == "Helper-1"
    assert rig.server._server.count_users_created_by(APP) == 1

