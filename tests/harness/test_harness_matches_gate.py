"""The harness decides a call as the host's gate does: the same app, policy and calls give the
same outcome (`harness_vs_gate.py` runs both)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness_helpers import write_app
from harness_vs_gate import both, close_all, rig_and_harness, run_steps

from sandbox.harness import AppHarness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BOT_POLICY = '''
schema = 1
name = "test"
[[rule]]
id = "bots"
effect = "permit"
apps = ["probe"]
actions = ["users.create", "roles.assign", "livechat.agents", "livechat.read",
           "messages.send", "users.read"]
[rule.when]
user_types = ["bot"]
roles = ["bot", "livechat-agent"]
[[quota]]
id = "q-create"
apps = ["probe"]
action = "users.create"
limit = 50
window = "1h"
scope = "install"
[[quota]]
id = "q-roles"
apps = ["probe"]
action = "roles.assign"
limit = 50
window = "1h"
scope = "install"
'''


def test_own_users_facts_for_every_target_user_action(tmp_path: Path) -> None:
    """An app acting on a user it created (department agents, speaking as it): the harness
    supplies the target facts the engine needs, as the gate does (it refused with "the host
    supplied no facts about the target user"); a user the server does not know is NotFound."""
    app = write_app(tmp_path / "app", permissions=(
        "users.create", "livechat.agents", "livechat.read", "messages.send", "roles.assign",
        "users.read", "messages.send-as-own-users"))
    rig, h = rig_and_harness(tmp_path, app, BOT_POLICY.replace(
        '"users.read"]', '"users.read", "messages.send-as-own-users"]'))
    rig.server._server.add_department("Bot")
    h.add_department("Bot")
    steps = [
        ("users.create", {"username": "ext-bot", "name": "Bot", "type": "bot",
                          "roles": ["bot"]}),
        ("livechat.add_agent", {"user_id": "$0.id"}),
        ("livechat.add_department_agent", {"department": "Bot", "user_id": "$0.id"}),
        ("livechat.remove_department_agent", {"department": "Bot", "user_id": "$0.id"}),
        ("messages.send_as_user", {"room_id": "no-room", "user_id": "$0.id", "text": "hi"}),
        ("livechat.add_department_agent", {"department": "Bot", "user_id": "no-such-user"}),
    ]
    gate, harness = both(rig, h, steps)
    assert harness == gate
    assert [code for code, _ in gate] == ["ok"] * 4 + ["not_found"] * 2, gate


def _role_app(tmp_path: Path, roles: str) -> Path:
    app = write_app(tmp_path / "app", permissions=("livechat.read",))
    (app / "app.toml").write_text((app / "app.toml").read_text() + f'''
[[permission]]
name = "users.create"
reason = "Creates bot accounts for the integration."
roles = {roles}

[[permission]]
name = "roles.assign"
reason = "Gives its bots their roles."
roles = {roles}

[[permission]]
name = "livechat.agents"
reason = "Makes its bots agents."
''')
    return app


def test_roles_the_manifest_did_not_declare_are_refused(tmp_path: Path) -> None:
    app = _role_app(tmp_path, '["bot"]')
    rig, h = rig_and_harness(tmp_path, app, BOT_POLICY)
    steps = [
        ("users.create", {"username": "ext-a", "name": "A", "type": "bot",
                          "roles": ["livechat-agent"]}),
        ("users.create", {"username": "ext-b", "name": "B", "type": "bot", "roles": ["bot"]}),
        ("roles.assign", {"user_id": "$1.id", "role": "livechat-agent"}),
        ("roles.assign", {"user_id": "$1.id", "role": "bot"}),
    ]
    gate, harness = both(rig, h, steps)
    assert harness == gate
    assert [code for code, _ in gate] == ["permission_denied", "ok", "permission_denied", "ok"]
    assert "not declared for 'users.create'" in gate[0][1]


def test_the_livechat_agent_role_needs_livechat_agents_even_without_a_policy(
        tmp_path: Path) -> None:
    """Giving the livechat-agent role is making an agent (ROLE_AMOUNTS_TO): the engine decides
    it as livechat.add_agent too, whatever the policy, so the harness refuses it without
    `use_policy` as well when livechat.agents is not granted."""
    app = _role_app(tmp_path, '["bot", "livechat-agent"]')
    grants = ["livechat.read", "users.create", "roles.assign"]
    rig, h = rig_and_harness(tmp_path, app, BOT_POLICY, grants=grants, use_policy=False)
    steps = [
        ("users.create", {"username": "ext-a", "name": "A", "type": "bot",
                          "roles": ["bot", "livechat-agent"]}),
        ("users.create", {"username": "ext-b", "name": "B", "type": "bot", "roles": ["bot"]}),
        ("roles.assign", {"user_id": "$1.id", "role": "livechat-agent"}),
    ]
    gate, harness = both(rig, h, steps)
    assert harness == gate
    assert [code for code, _ in gate] == ["permission_denied", "ok", "permission_denied"]
    assert "amounts to livechat.add_agent" in gate[2][1]


def test_usernames_names_and_argument_types_as_the_host_checks_them(tmp_path: Path) -> None:
    """The server's username alphabet, the `app.` namespace kept for apps' own users, the
    display name's rules, and arguments of the wrong type (the engine's check, a StockadeError
    where the harness raised a bare TypeError)."""
    app = write_app(tmp_path / "app", permissions=("users.create", "livechat.read"))
    rig, h = rig_and_harness(tmp_path, app, BOT_POLICY)

    def create(username: object, name: object = "X", **more: object) -> tuple[str, dict]:
        return ("users.create", {"username": username, "name": name, "type": "bot", **more})

    steps = [create("ext-John Doe"), create("jos\u00e9"), create("app.other-app"),
             create("APP.Other"), create("ok\n"), create("ab"), create(123), create("name-1", ""),
             create("name-2", "tab\there"), create("name-3", 5), create("name-4", email="not-an-email"),
             create("ok-name"),
             ("users.create", {"username": "name-6", "name": "X", "type": "app"})]
    gate, harness = both(rig, h, steps)
    assert harness == gate
    codes = [code for code, _ in gate]
    assert codes[:2] == ["invalid_argument"] * 2 and codes[6] == "permission_denied"
    assert codes[-2] == "ok", gate
    # Without use_policy too (the app's own policy-free path): the same but for the guardrail
    # a policy-free harness does not model (type "app").
    bare = AppHarness.from_dir(app)
    assert run_steps(bare.call, steps[:-1]) == gate[:-1]


def test_persistence_as_the_host_stores_it(tmp_path: Path) -> None:
    """Values measured as canonical UTF-8 JSON (the harness counted ", " separators and ASCII
    escapes), NUL refused in keys, a missing argument refused by the engine."""
    app = write_app(tmp_path / "app", permissions=("persistence", "livechat.read"))
    rig, h = rig_and_harness(tmp_path, app, BOT_POLICY)
    near_cap = ["x" * 2000] * 32  # 64,065 B canonical, 64,127 B with ", "
    steps = [
        ("persistence.put", {"key": "k", "value": None}),
        ("persistence.get", {"key": "k"}),
        ("persistence.put", {"key": "k", "value": near_cap}),
        ("persistence.put", {"key": "e", "value": "\u00e9" * 30000}),
        ("persistence.put", {"key": "big", "value": "\u00e9" * 33000}),
        ("persistence.put", {"key": "a\x00b", "value": 1}),
        ("persistence.put", {"key": "", "value": 1}),
        ("persistence.put", {"key": "r", "value": 1, "association": {"kind": "x", "id": "1"}}),
        ("persistence.put", {"key": "r", "value": 1, "association": {"kind": "room", "id": ""}}),
        ("persistence.put", {"key": "r", "value": 1,
                             "association": {"kind": "room", "id": "r1"}}),
        ("persistence.find", {"association": {"kind": "room", "id": "r1"}}),
        ("persistence.get", {"key": "missing-key"}),
        ("persistence.delete", {"key": "e"}),
        ("persistence.get", {"key": "e"}),
    ]
    gate, harness = both(rig, h, steps)
    assert harness == gate
    assert [code for code, _ in gate[:6]] == ["permission_denied", "not_found", "ok", "ok",
                                               "invalid_argument", "invalid_argument"], gate
    bare = AppHarness.from_dir(app)  # without use_policy: the host's rules all the same
    assert run_steps(bare.call, steps) == gate


@pytest.fixture(autouse=True)
def _close_served_stores() -> Iterator[None]:
    yield
    close_all()


def test_quota_units_come_back_after_a_refundable_refusal(tmp_path: Path) -> None:
    """The server's Conflict / NotFound / InvalidArgument gives the call's quota unit back, as
    the host's ledger does (the harness kept it, so the next create was QuotaExceeded)."""
    app = write_app(tmp_path / "app", permissions=("users.create", "livechat.read"))
    rig, h = rig_and_harness(tmp_path, app, BOT_POLICY.replace("limit = 50", "limit = 2", 1))
    steps = [("users.create", {"username": u, "name": "X", "type": "bot"})
             for u in ("ext-taken", "ext-taken", "EXT-TAKEN", "ext-new", "ext-third")]
    gate, harness = both(rig, h, steps)
    codes = [code for code, _ in gate]
    assert codes == ["ok", "conflict", "conflict", "ok", "quota_exceeded"], gate
    assert [code for code, _ in harness] == codes
    assert harness[:4] == gate[:4]


def test_refunds_stop_once_the_refusal_budget_is_spent(tmp_path: Path) -> None:
    from policies.quota import REFUSAL_BUDGET

    app = write_app(tmp_path / "app", permissions=("persistence", "livechat.read"))
    policy = tmp_path / "p.toml"
    policy.write_text('schema = 1\nname = "p"\n[[rule]]\nid = "r"\neffect = "permit"\n'
                      'apps = ["probe"]\nactions = ["persistence"]\n[[quota]]\nid = "q"\n'
                      'apps = ["probe"]\naction = "persistence.get"\n'
                      'limit = 5\nwindow = "1h"\nscope = "install"\n')
    h = AppHarness.from_dir(app).use_policy(policy)
    outcomes = []
    for _ in range(REFUSAL_BUDGET + 6):
        try:
            h.ctx.store.get("missing")
        except Exception as exc:  # the codes are what the test reads
            outcomes.append(type(exc).__name__)
    # The first REFUSAL_BUDGET misses were refunded; the next 5 kept their units; then full.
    assert outcomes.count("NotFound") == REFUSAL_BUDGET + 5
    assert outcomes[-1] == "QuotaExceeded"
