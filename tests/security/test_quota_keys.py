"""A quota's counter is its own (DESIGN rule 8: quotas are exact).

Attacks, each of which held on the code before this file: the engine suffixed a quota's
counter key with the quota's id only when another quota charged the same key in the same
request, so which ring counted a quota depended on the other quotas around it:
- a workspace quota ("at most 2 creations an hour, any app") counted app-b's creations on
  `workspace:users.create` and app-a's, which a second workspace quota also named, on
  `workspace:users.create#<id>`: the workspace-wide limit was spent once per ring (4 for 2);
- an operator adding a second quota on the action (even a stricter one) moved the first
  quota to a fresh ring, so the units already taken in its window no longer counted.
Both run through the real gate, ledger and embedded server.
"""
from __future__ import annotations

from pathlib import Path

from apphelp import install, write_app, write_policy
from gatehelp import GateRig, build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from policies.loader import load_policy_text

SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"

WORKSPACE = '''
schema = 1
name = "ws"
[[rule]]
id = "makers-create"
effect = "permit"
apps = ["app-a", "app-b"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "ws-all-creations"
apps = ["*"]
action = "users.create"
limit = 2
window = "1h"
scope = "workspace"
[[quota]]
id = "ws-app-a-extra"
apps = ["app-a"]
action = "users.create"
limit = 50
window = "1h"
scope = "workspace"
'''

HOURLY = '''
schema = 1
name = "inst"
[[rule]]
id = "a-create"
effect = "permit"
apps = ["app-a"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "a-hourly"
apps = ["app-a"]
action = "users.create"
limit = 2
window = "1h"
'''
DAILY = '''
[[quota]]
id = "a-daily"
apps = ["*"]
action = "users.create"
limit = 3
window = "1d"
'''


def _home(tmp_path: Path, policy: str, apps: tuple[str, ...]) -> Home:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)  # the test's quotas alone
    write_policy(home, "test", policy)
    for app in apps:
        install(home, write_app(home.root / "src", app, ["users.create"], [], SRC))
    return home


def _create(rig: GateRig, username: str) -> bool:
    try:
        rig.gate.handle(rig.session, "users.create",
                        {"username": username, "name": "B", "type": "bot"})
        return True
    except GateError as exc:
        assert exc.code == "quota_exceeded", exc
        return False


def test_a_workspace_quota_is_one_ring_whichever_app_calls(tmp_path: Path) -> None:
    home = _home(tmp_path, WORKSPACE, ("app-a", "app-b"))
    rigs = [build_rig(home, SystemClock(), app) for app in ("app-a", "app-b")]
    made = [_create(rig, f"{rig.session.app_id}-bot{i}") for rig in rigs for i in range(3)]
    assert sum(made) == 2  # before the fix: 4, two for each app


def test_adding_a_quota_leaves_the_others_window_counted(tmp_path: Path) -> None:
    home = _home(tmp_path, HOURLY, ("app-a",))
    rig = build_rig(home, SystemClock(), "app-a")
    assert sum(_create(rig, f"bot-{i}") for i in range(3)) == 2
    rig.gate.policy.policy = load_policy_text(HOURLY + DAILY)  # what a reload swaps in
    assert sum(_create(rig, f"bot-{i}") for i in range(3, 6)) == 0  # before the fix: 2
