"""An operator can forbid an app every action in one rule (DESIGN rule 2: a forbid only narrows).

Attack (held before the fix): STK015 (wildcard actions, a security-warning, which refuses the
set) was raised for a forbid of `actions = ["*"]` as for a permit. An operator stopping an app
with such a forbid had the whole set refused: a serving host keeps deciding with its previous
revision, so the app's calls went on being allowed. STK014 already spared forbids; now STK015
does too, and the forbid stops every call of the app at the real gate.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import policy_rig

from host.errors import GateError
from policies.loader import load_policy_text

APP = "evil"
PERMIT = f'''
schema = 1
name = "reads"
[[rule]]
id = "evil-read"
effect = "permit"
apps = ["{APP}"]
actions = ["livechat.read"]
'''
STOP = f'''
schema = 1
name = "stop"
[[rule]]
id = "stop-evil"
effect = "forbid"
apps = ["{APP}"]
actions = ["*"]
'''


def test_a_forbid_of_every_action_loads_and_stops_the_app(tmp_path: Path) -> None:
    # the rig loads the policy folder as a host does
    rig = policy_rig(tmp_path, APP, ["livechat.read"], {"reads": PERMIT, "stop": STOP})
    with pytest.raises(GateError, match="stop-evil"):
        rig.gate.handle(rig.session, "livechat.list_departments", {})


def test_a_permit_of_every_action_is_still_refused() -> None:
    with pytest.raises(Exception, match="STK015"):
        load_policy_text(PERMIT.replace('["livechat.read"]', '["*"]'))
