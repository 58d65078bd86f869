"""`stockade can-i` says no while a quota the call is charged has no unit free, as the gate does.

Attack (held before the fix): can-i answers "would the host allow this call right now?". With
an app's quota spent, the real gate refused its next call (`quota_exceeded`), directly and
through a REST route that amounts to the same action, while can-i said yes (exit 0) to both: it
decided the policy and left the quotas out. Now it reads the quota rings of the app's install in
the home's store, the charges of a REST route's action with the route's own, and says no
(`quota_exceeded`) when one has no unit free; `--list` says so too (it said yes).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)
from gatehelp import build_rig

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home

APP = "crm"
POLICY = f'''
schema = 1
name = "p"
[[rule]]
id = "crm-read"
effect = "permit"
apps = ["{APP}"]
actions = ["users.get", "users.get_by_username", "livechat.list_departments"]
[[rule]]
id = "crm-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/users.info"]
[[quota]]
id = "crm-read-q"
apps = ["{APP}"]
action = "users.get"
limit = 1
window = "1h"
[[quota]]
id = "crm-deps-q"
apps = ["{APP}"]
action = "livechat.list_departments"
limit = 1
window = "1h"
'''


def _can_i(cli: Run, action: str, *argv: str) -> dict[str, Any]:
    r = cli("can-i", APP, action, *argv, "--json")
    doc: dict[str, Any] = json.loads(r.stdout)
    assert r.exit_code == (0 if doc["allowed"] else 1), r.output
    return doc


def test_can_i_says_no_while_the_quota_is_spent(home: Path, cli: Run) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "p", POLICY)
    install(h, write_app(h.root / "src", APP, ["users.read", "livechat.read", "server.rest"],
                         [], "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(h, SystemClock(), APP)
    me = rig.install.app_user_id
    route = ["--arg", "method=GET", "--arg", "route=/api/v1/users.info",
             "--arg", f"body={json.dumps({'userId': me})}"]
    assert _can_i(cli, "users.get", "--arg", f"user_id={me}")["allowed"]
    assert _can_i(cli, "rest.call", *route)["allowed"]
    rig.gate.handle(rig.session, "users.get", {"user_id": me})
    with pytest.raises(GateError) as direct:
        rig.gate.handle(rig.session, "users.get", {"user_id": me})
    with pytest.raises(GateError) as via_rest:
        rig.gate.handle(rig.session, "rest.call", {
            "method": "GET", "route": "/api/v1/users.info", "body": {"userId": me}})
    assert direct.value.code == via_rest.value.code == "quota_exceeded"
    for doc in (_can_i(cli, "users.get", "--arg", f"user_id={me}"),
                _can_i(cli, "rest.call", *route)):
        assert (doc["allowed"], doc["code"]) == (False, "quota_exceeded"), doc
        assert "crm-read-q" in doc["message"]
    # An action under no quota is still a yes, as the gate serves it.
    assert _can_i(cli, "users.get_by_username", "--arg", "username=nobody")["allowed"]

    def listed() -> dict[str, Any]:
        doc = json.loads(cli("can-i", APP, "--list", "--json").stdout)
        return {r["action"]: r for r in doc["actions"]}["livechat.list_departments"]

    assert listed()["answer"] == "yes"
    rig.gate.handle(rig.session, "livechat.list_departments", {})
    with pytest.raises(GateError, match="quota"):
        rig.gate.handle(rig.session, "livechat.list_departments", {})
    row = listed()
    assert row["answer"] == "no" and "crm-deps-q" in row["why"], row


SEATS = f'''
schema = 1
name = "seats"
[workspace]
max_active_app_users = 1
[[rule]]
id = "crm-create"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "crm-create-q"
apps = ["{APP}"]
action = "users.create"
limit = 10
window = "1h"
'''


def test_can_i_says_no_while_the_seat_ceiling_is_reached(home: Path, cli: Run) -> None:
    """The admission's other refusal: a creation past the policy's seat ceiling (billed
    seats) is refused by the gate, and can-i said yes to it (it checked no seat)."""
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "seats", SEATS)
    install(h, write_app(h.root / "src", APP, ["users.create"], [],
                         "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(h, SystemClock(), APP)
    ask = ["--arg", "username=bot-2", "--arg", "name=B", "--arg", "type=bot"]
    assert _can_i(cli, "users.create", *ask)["allowed"]
    rig.gate.handle(rig.session, "users.create", {"username": "bot-1", "name": "B", "type": "bot"})
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "users.create",
                        {"username": "bot-2", "name": "B", "type": "bot"})
    doc = _can_i(cli, "users.create", *ask)
    assert (doc["allowed"], doc["code"]) == (False, refused.value.code), doc
    assert "seat" in doc["message"]
