"""`stockade policy explain` names the code the gate records for a call refused by its quota.

Attack (held before the fix): SECURITY.md says a refusal's audit record and `policy explain`
for the same request name the same code, so a reviewer can reproduce any refusal from the
chain. With an app's quota spent, the real gate refused its next call (`quota_exceeded` in the
record), while `policy explain` for that call said `allow` and exited 0: it keyed the quota's
ring by the install id "explain" (used 0) unless `--install` was given, and even then showed
the spent window (used 1 of 1) beside `allow`. Now explain reads the rings of the app's install
in this home and answers `quota_exceeded` when a charged quota has no unit free now.
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

POLICY = '''
schema = 1
name = "p"
[[rule]]
id = "crm-read"
effect = "permit"
apps = ["crm"]
actions = ["users.get", "users.get_by_username"]
[[quota]]
id = "crm-read-q"
apps = ["crm"]
action = "users.get"
limit = 1
window = "1h"
'''


def test_explain_names_the_quota_refusal_the_gate_records(home: Path, cli: Run) -> None:
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "p", POLICY)
    install(h, write_app(h.root / "src", "crm", ["users.read"], [],
                         "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    rig = build_rig(h, SystemClock(), "crm")
    me = rig.install.app_user_id

    def explain(action: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = cli("policy", "explain", "--policy", str(h.policies_dir), "--app", "crm",
                "--action", action, "--args-json", json.dumps(args), "--json")
        return r.exit_code, json.loads(r.stdout)

    assert explain("users.get", {"user_id": me})[0] == 0  # a unit is free
    rig.gate.handle(rig.session, "users.get", {"user_id": me})
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "users.get", {"user_id": me})
    (record,) = [e.body for e in rig.ledger.audit.tail(1)]
    assert refused.value.code == record["code"] == "quota_exceeded" and not record["allowed"]
    code, said = explain("users.get", {"user_id": me})
    assert (code, said["allowed"], said["code"]) == (1, False, record["code"]), said
    assert said["quotas"][0]["key"].startswith(f"install:{rig.install.install_id}:")
    # Another action of the app, under no quota: still allowed, as the gate allows it.
    code, said = explain("users.get_by_username", {"username": "nobody"})
    assert (code, said["code"]) == (0, "allow")


AGENTS = '''
schema = 1
name = "p"
[[rule]]
id = "crm-create"
effect = "permit"
apps = ["crm"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
roles = ["livechat-agent"]
[[rule]]
id = "crm-no-agents"
effect = "forbid"
apps = ["crm"]
actions = ["livechat.add_agent"]
[[quota]]
id = "crm-create-q"
apps = ["crm"]
action = "users.create"
limit = 5
window = "1h"
'''


def test_explain_decides_with_the_installed_apps_grants(home: Path, cli: Run) -> None:
    """A creation with the livechat-agent role is also livechat.add_agent: with the app's own
    grants (livechat.agents among them) the gate refuses it on the policy's forbid and records
    `policy_denied`; explain, granting only the action's permission, said
    `permission_denied`, a refusal the chain never holds for that call."""
    h = Home(home).ensure()
    h.default_policy.unlink(missing_ok=True)
    write_policy(h, "p", AGENTS)
    folder = write_app(h.root / "src", "crm", ["users.create", "livechat.agents"], [],
                       "from stockade import App\n\nclass TestApp(App):\n    pass\n")
    install(h, folder)
    rig = build_rig(h, SystemClock(), "crm")
    args = {"username": "agent-1", "name": "A", "type": "bot", "roles": ["livechat-agent"]}
    with pytest.raises(GateError):
        rig.gate.handle(rig.session, "users.create", dict(args))
    (record,) = [e.body for e in rig.ledger.audit.tail(1)]
    r = cli("policy", "explain", "--policy", str(h.policies_dir), "--app", "crm",
            "--action", "users.create", "--args-json", json.dumps(args),
            "--fact", "role_privileged=false", "--json")
    said = json.loads(r.stdout)
    assert (r.exit_code, said["code"]) == (1, record["code"]) == (1, "policy_denied"), said
    assert "livechat.agents" in said["grants"]
