"""Declared roles: a manifest may name the roles it will assign. Consent refuses admin-class
roles outright (install, update and consent), and the gate refuses undeclared roles."""
from __future__ import annotations

from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import build_rig
from typer.testing import CliRunner

from host.apps.consent import ConsentError
from host.apps.packages import package_folder
from host.cli.main import root
from host.clock import SystemClock
from host.errors import GateError, RefusalBudgetExceeded
from host.home import Home
from host.ledger.refusals import REFUSAL_BUDGET
from host.runtime import Host
from host.server.principals import SYSTEM

SRC = '''
from stockade import App, PermissionDenied

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        user = ctx.users.create("bot-x", "X", "bot", roles=["bot"])
        try:
            ctx.roles.assign(user["id"], "livechat-agent")
            return "assigned"
        except PermissionDenied as e:
            return "denied: " + str(e)
'''

ROLES_PERM = '''
[[permission]]
name = "roles.assign"
reason = "gives created agents the roles listed"
roles = {roles}
'''


def _app(tmp: Path, version: str, roles: str) -> Path:
    folder = write_app(tmp / version, "roler", ["users.create", "livechat.read"],
                       ["livechat.room_started"], SRC, settings=ROLES_PERM.format(roles=roles))
    toml = (folder / "app.toml").read_text().replace('version = "1.0.0"', f'version = "{version}"')
    (folder / "app.toml").write_text(toml)
    return folder


def test_install_refuses_a_manifest_declaring_an_admin_role(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    with pytest.raises(ConsentError, match=r"admin-class role 'Admin'|not a canonical"):
        install(home, _app(tmp_path, "1.0.0", '["bot", "Admin"]'))
    with pytest.raises(ConsentError, match="admin-class role 'owner'"):
        install(home, _app(tmp_path, "1.0.1", '["owner"]'))


def test_update_asking_for_admin_is_refused_at_consent_and_old_version_stays(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = CliRunner()
    _, v1 = package_folder(_app(tmp_path, "1.0.0", '["bot"]'))
    (tmp_path / "v1.zip").write_bytes(v1)
    r = cli.invoke(root, ["--home", str(home), "app", "install", str(tmp_path / "v1.zip"),
                          "--allow-unsigned", "--grant", "users.create", "--grant",
                          "livechat.read", "--grant", "roles.assign"])
    assert r.exit_code == 0, r.output
    _, v2 = package_folder(_app(tmp_path, "1.1.0", '["bot", "admin"]'))
    (tmp_path / "v2.zip").write_bytes(v2)
    r = cli.invoke(root, ["--home", str(home), "app", "update", "roler", str(tmp_path / "v2.zip"),
                          "--allow-unsigned"])
    assert r.exit_code == 1
    assert "admin-class role 'admin'" in r.output
    r = cli.invoke(root, ["--home", str(home), "app", "info", "roler", "--json"])
    assert '"version": "1.0.0"' in r.stdout and '"pending_update": null' in r.stdout


def test_gate_refuses_a_role_the_manifest_did_not_declare(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "roles", '''
        schema = 1
        name = "roles"
        [[rule]]
        id = "roler-all"
        effect = "permit"
        apps = ["roler"]
        actions = ["users.create", "roles.assign", "livechat.read"]
        [rule.when]
        user_types = ["bot"]
        roles = ["bot", "livechat-agent"]
        [[quota]]
        id = "roler-create"
        apps = ["roler"]
        action = "users.create"
        limit = 5
        window = "1h"
        scope = "install"
        ''')
    install(home, _app(tmp_path, "1.0.0", '["bot"]'))
    with Host(home) as h:
        runner = next(iter(h.runners.values()))
        result = runner.submit("livechat.room_started", {}, 5.0).result(15)
    # the policy would allow livechat-agent; the manifest declared only bot
    assert result.startswith("denied:") and "livechat-agent" in result and "manifest" in result


ROLER_POLICY = '''
schema = 1
name = "roles"
[[rule]]
id = "roler-all"
effect = "permit"
apps = ["roler"]
actions = ["users.create", "roles.assign"]
[rule.when]
user_types = ["bot"]
roles = ["bot"]
[[quota]]
id = "roler-create"
apps = ["roler"]
action = "users.create"
limit = 5
window = "1h"
[[quota]]
id = "roler-roles"
apps = ["roler"]
action = "roles.assign"
limit = 5
window = "1h"
'''
DECLARED = '''
[[permission]]
name = "users.create"
reason = "creates bots"
roles = ["bot"]
[[permission]]
name = "roles.assign"
reason = "gives created agents the roles listed"
roles = ["bot"]
'''


@pytest.mark.parametrize(("action", "args"), [
    ("roles.assign", {"user_id": "u1", "role": ["bot"]}),
    ("roles.assign", {"user_id": "u1", "role": {"x": 1}}),
    ("roles.assign", {"user_id": "u1", "role": 5}),
    ("users.create", {"username": "bot-1", "name": "B", "type": "bot", "roles": 5}),
    ("users.create", {"username": "bot-1", "name": "B", "type": "bot", "roles": [["bot"]]}),
], ids=["role-list", "role-map", "role-int", "roles-int", "roles-nested"])
def test_a_role_of_another_shape_is_refused_audited_and_counted(
        tmp_path: Path, action: str, args: dict[str, object]) -> None:
    """Attack (held before the fix): the declared-roles check looked a role up in a frozenset
    before the engine checked its type, so `role=["bot"]` raised TypeError out of the gate:
    no audit record, no refusal-budget unit, an app refused without bound (rules 3, 13)."""
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "roles", ROLER_POLICY)
    install(home, write_app(home.root / "src", "roler", [], [],
                            "from stockade import App\n\nclass TestApp(App):\n    pass\n",
                            settings=DECLARED))
    rig = build_rig(home, SystemClock(), "roler")
    if "user_id" in args:  # a user that exists, so the call reaches the engine's checks
        args = {**args, "user_id": rig.server._server.users_create(SYSTEM, "human", "H", "user")["id"]}
    audit = rig.ledger.audit
    before = audit.head()[0]
    with pytest.raises(GateError) as exc:
        rig.gate.handle(rig.session, action, dict(args))
    assert exc.value.code == "permission_denied" and "invalid arguments" in str(exc.value)
    assert audit.head()[0] == before + 1
    assert [e.body["allowed"] for e in audit.tail(1)] == [False]
    over = 0
    for _ in range(REFUSAL_BUDGET + 5):
        try:
            rig.gate.handle(rig.session, action, dict(args))
        except RefusalBudgetExceeded:
            over += 1
        except GateError:
            pass
    assert over >= 5
    assert rig.server.reached == []
