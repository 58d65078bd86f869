"""`can-i --list` says no for an action a forbid refuses whatever its arguments (review finding:
it answered "depends on its arguments" whenever a permit named the app, while a forbid with no
`when` constraint concerning the action refuses every call, and single-action can-i says no)."""
from __future__ import annotations

import json
from pathlib import Path

from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.home import Home

APP = "lister"
POLICY = f'''
schema = 1
name = "p"
[[rule]]
id = "create"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create", "roles.assign"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
[[rule]]
id = "read"
effect = "permit"
apps = ["{APP}"]
actions = ["livechat.read"]
[[rule]]
id = "stop-create"
effect = "forbid"
apps = ["{APP}"]
actions = ["users.create", "livechat.get_room"]
[[rule]]
id = "stop-support"
effect = "forbid"
apps = ["{APP}"]
actions = ["roles.assign"]
[rule.when]
roles = ["support"]
[[quota]]
id = "q"
apps = ["{APP}"]
action = "*"
limit = 50
window = "1h"
'''


def test_list_says_no_where_a_forbid_refuses_every_call(cli: Run, home: Path) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "p", POLICY)
    install(h, write_app(h.root / "src", APP, ["users.create", "roles.assign", "livechat.read"],
                         [], "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    r = cli("can-i", APP, "--list", "--json")
    assert r.exit_code == 0, r.output
    rows = {x["action"]: x for x in json.loads(r.stdout)["actions"]}
    for name in ("users.create", "livechat.get_room"):
        assert rows[name]["answer"] == "no", rows[name]
        assert "stop-create" in rows[name]["why"]
        one = cli("can-i", APP, name, "--arg", "username=ext-b", "--arg", "name=B",
                  "--arg", "type=bot", "--arg", "room_id=r1")
        assert one.exit_code == 1 and one.stdout.strip() == "no", one.output
    # A forbid narrowed by a constraint that concerns the action leaves "depends".
    assert rows["roles.assign"]["answer"] == "depends", rows["roles.assign"]
    assert rows["livechat.get_visitor"]["answer"] == "depends", rows["livechat.get_visitor"]
