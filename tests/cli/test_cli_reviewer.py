"""Reviewer tools: `can-i` with an installed app's real grants, `--list`, list arguments,
did-you-mean for unknown names, and `policy check --fail-on`."""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

from host.home import Home

ROLES_POLICY = '''schema = 1
name = "roles"
[[rule]]
id = "bot-roles"
effect = "permit"
apps = ["a"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
roles = ["bot", "livechat-agent"]
[[rule]]
id = "agents"
effect = "permit"
apps = ["a"]
actions = ["livechat.add_agent"]
[[quota]]
id = "q"
apps = ["a"]
action = "users.create"
limit = 5
window = "1h"
scope = "install"
'''


def _greeter(cli: Run, tmp_path: Path, *grants: str) -> None:
    assert cli("app", "new", "greeter", "--dir", str(tmp_path / "greeter")).exit_code == 0
    assert cli("policy", "add", str(tmp_path / "greeter.policy.toml")).exit_code == 0
    flags = [x for g in grants for x in ("--grant", g)]
    r = cli("app", "install", str(tmp_path / "greeter"), "--allow-unsigned", *flags)
    assert r.exit_code == 0, r.output


def test_can_i_uses_the_installed_grants(cli: Run, tmp_path: Path) -> None:
    _greeter(cli, tmp_path, "livechat.read", "messages.send")
    yes = cli("can-i", "greeter", "messages.send", "--arg", "room_id=r1", "--arg", "text=hi")
    assert yes.exit_code == 0 and yes.stdout == "yes\n", yes.output
    # Not granted: the same call is a no once the grant is revoked.
    assert cli("app", "consent", "greeter", "--revoke", "messages.send", "--yes").exit_code == 0
    no = cli("can-i", "greeter", "messages.send", "--arg", "room_id=r1", "--arg", "text=hi")
    # The gate's own words (can-i decides by the gate's steps), naming how to get it.
    assert no.exit_code == 1 and no.stdout == "no\n"
    assert "lacks permission 'messages.send'" in no.stderr and "app consent" in no.stderr
    # No rule: users.read is not permitted by any rule for greeter.
    doc = json.loads(cli("can-i", "greeter", "--list", "--json").stdout)
    by = {r["action"]: r for r in doc["actions"]}
    assert by["messages.send"]["answer"] == "no"
    assert by["livechat.get_room"]["answer"] == "depends"
    assert by["users.create"]["why"] == "users.create not granted"


def test_can_i_unknown_action_and_app(cli: Run, tmp_path: Path) -> None:
    _greeter(cli, tmp_path, "livechat.read")
    r = cli("can-i", "greeter", "mesages.send")
    assert r.exit_code == 2 and "did you mean 'messages.send'?" in r.stderr
    assert cli("can-i", "nope", "messages.send").exit_code == 2


def test_explain_reads_roles_as_a_list(cli: Run, tmp_path: Path) -> None:
    pol = tmp_path / "roles.toml"
    pol.write_text(ROLES_POLICY)
    base = ["policy", "explain", "--policy", str(pol), "--app", "a", "--action",
            "users.create", "--arg", "username=u1", "--arg", "name=U", "--arg", "type=bot",
            "--fact", "role_privileged=false"]
    ok = cli(*base, "--arg", "roles=bot,livechat-agent", "--grant", "users.create",
             "--grant", "livechat.agents", "--json")
    assert ok.exit_code == 0, ok.output
    # the livechat-agent role is being an agent: decided as livechat.add_agent too
    assert json.loads(ok.stdout)["allowed"] is True
    assert json.loads(ok.stdout)["rules"] == ["agents", "bot-roles"]
    alone = cli(*base, "--arg", "roles=bot,livechat-agent", "--json")  # users.create's grant only
    assert alone.exit_code == 1 and "amounts to livechat.add_agent" in json.loads(
        alone.stdout)["message"]
    wide = cli(*base, "--arg", "roles=bot,admin", "--json")
    assert wide.exit_code == 1 and json.loads(wide.stdout)["allowed"] is False


def test_check_did_you_mean_and_fail_on(cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\nname = "b"\n[[rule]]\nid = "r"\neffect = "permit"\n'
                   'apps = ["x"]\nactions = ["users.creat"]\n')
    r = cli("policy", "check", str(bad))
    assert r.exit_code == 1
    assert f"{bad}:7:12: error STK010" in r.stderr and "did you mean 'users.create'?" in r.stderr
    default = Path(__file__).resolve().parents[2] / "policies" / "shipped" / "default.toml"
    assert cli("policy", "check", str(default)).exit_code == 0  # one warning: below the bar
    strict = cli("policy", "check", str(default), "--fail-on", "warning", "--json")
    assert strict.exit_code == 1 and json.loads(strict.stdout)["fail_on"] == "warning"
    assert cli("policy", "check", str(default), "--fail-on", "loud").exit_code == 2


REPO = Path(__file__).resolve().parents[2]


def _install_example(cli: Run, name: str) -> None:
    """Install an example app with every permission it asks for."""
    import re

    manifest = (REPO / "examples" / "apps" / name / "app.toml").read_text()
    grants = [x for p in re.findall(r'name = "([a-z.]+)"', manifest) for x in ("--grant", p)]
    r = cli("app", "install", str(REPO / "examples" / "apps" / name), "--allow-unsigned", *grants)
    assert r.exit_code == 0, r.output


def _agent_sync(cli: Run, home: Path) -> str:
    """Install the agent-sync and crm-sync examples under the demo policy; return agent-sync's
    app user's id (the server user made at install)."""
    import sqlite3

    assert cli("policy", "add", str(REPO / "examples" / "policies" / "demo.toml")).exit_code == 0
    _install_example(cli, "agent-sync")
    _install_example(cli, "crm-sync")
    with sqlite3.connect(Home(home).server_db) as c:
        # An operator-made custom role that holds admin permissions: only the server knows.
        c.execute("INSERT INTO roles (name, privileged, description) VALUES "
                  "('ops-boss', 1, 'custom admin')")
        [(app_user,)] = c.execute("SELECT id FROM users WHERE username = 'app.agent-sync'")
    return str(app_user)


def test_can_i_looks_up_server_facts_like_the_gate(cli: Run, home: Path) -> None:
    from host.clock import SystemClock
    from host.server.embedded import EmbeddedServer
    from host.server.principals import SYSTEM

    app_user = _agent_sync(cli, home)
    create = ["can-i", "agent-sync", "users.create", "--arg", "username=ext-a", "--arg",
              "name=A", "--arg", "type=bot"]
    # role_privileged comes from the server: no --fact needed for an ordinary role ...
    yes = cli(*create, "--arg", "roles=bot", "--json")
    assert yes.exit_code == 0, yes.output
    assert json.loads(yes.stdout)["facts"] == {"role_privileged": False}
    # ... and a custom role the server marks privileged is refused, as the gate refuses it.
    no = cli(*create, "--arg", "roles=bot,ops-boss")
    assert no.exit_code == 1 and "the server marks this role privileged" in no.stderr
    # Own users only: the app's own user yes, an operator's user no (target facts looked up).
    human = EmbeddedServer(Home(home).server_db, SystemClock()).users_create(
        SYSTEM, "human", "Human", "user")
    assign = ["can-i", "agent-sync", "roles.assign", "--arg", "role=bot"]
    assert cli(*assign, "--arg", f"user_id={app_user}").exit_code == 0
    theirs = cli(*assign, "--arg", f"user_id={human['id']}")
    assert theirs.exit_code == 1 and "not created by this app" in theirs.stderr
    # Every action the engine holds to own users gets its target facts, as at the gate (this
    # list once drifted from the gate's: a department move of the app's own user read "no").
    dept = ["can-i", "agent-sync", "livechat.add_department_agent", "--arg", "department=d1"]
    assert cli(*dept, "--arg", f"user_id={app_user}").exit_code == 0
    assert cli(*dept, "--arg", f"user_id={human['id']}").exit_code == 1
    missing = cli(*assign, "--arg", "user_id=nope")
    assert missing.exit_code == 2 and "no user with id 'nope'" in missing.stderr
    # A fact the host looks up at call time but can-i cannot: it says which --fact to pass.
    web = ["can-i", "crm-sync", "http.request", "--arg", "method=GET",
           "--arg", "url=https://crm.localtest:8443/x"]
    r = cli(*web)
    assert r.exit_code == 1 and "--fact resolved_ips=" in r.stderr, r.stderr
    assert cli(*web, "--fact", 'resolved_ips=["127.0.0.1"]').exit_code == 0
