"""A role that is a power of its own (`ROLE_AMOUNTS_TO`): giving `livechat-agent` makes a
livechat agent, so roles.assign and users.create with it pass livechat.add_agent too, and
roles.remove of it livechat.remove_agent (DESIGN rule 11). Each test attacks one way around."""
from __future__ import annotations

from polhelp import ALL_PERMS, ask, create, demo_policy, policy

OWN = {"target_created_by_app": "agent-sync", "role_privileged": False}
NOT_PRIV = {"role_privileged": False}
ROLES_ONLY = ALL_PERMS - {"livechat.agents"}

# An operator lets agent-sync hand out the livechat-agent role, and nothing else about agents.
ROLE_RULE = """
[[rule]]
id = "give-agent-role"
effect = "permit"
apps = ["agent-sync"]
actions = ["roles.assign", "roles.remove", "users.create"]
[rule.when]
roles = ["livechat-agent", "bot"]
user_types = ["bot"]

[[quota]]
id = "role-changes"
apps = ["agent-sync"]
action = "roles.assign"
limit = 20
window = "1h"
scope = "install"

[[quota]]
id = "accounts"
apps = ["agent-sync"]
action = "users.create"
limit = 5
window = "1d"
scope = "install"
"""
AGENT_RULE = """
[[rule]]
id = "make-agents"
effect = "permit"
apps = ["agent-sync"]
actions = ["livechat.add_agent", "livechat.remove_agent"]

[[quota]]
id = "agents-a-day"
apps = ["agent-sync"]
action = "livechat.add_agent"
limit = 2
window = "1d"
scope = "install"
"""
ASSIGN = {"user_id": "u1", "role": "livechat-agent"}


def test_the_role_without_the_agents_permission_is_refused() -> None:
    p = policy(ROLE_RULE + AGENT_RULE)
    for action in ("roles.assign", "roles.remove"):
        d = ask(p, action, ASSIGN, OWN, grants=ROLES_ONLY)
        assert d.code == "permission_denied" and not d.allowed, action
        assert "livechat.agents" in d.message and "amounts to" in d.message
    d = ask(p, "users.create", create(roles=["livechat-agent"]), NOT_PRIV, grants=ROLES_ONLY)
    assert d.code == "permission_denied" and "livechat.add_agent" in d.message


def test_the_role_without_a_rule_for_making_agents_is_refused() -> None:
    p = policy(ROLE_RULE)
    d = ask(p, "roles.assign", ASSIGN, OWN)
    assert d.code == "policy_denied" and "livechat.add_agent" in d.message
    d = ask(p, "roles.remove", ASSIGN, OWN)
    assert d.code == "policy_denied" and "livechat.remove_agent" in d.message
    d = ask(p, "users.create", create(roles=["bot", "livechat-agent"]), NOT_PRIV)
    assert d.code == "policy_denied" and "livechat.add_agent" in d.message


def test_a_forbid_on_making_agents_stops_the_role() -> None:
    forbid = ('\n[[rule]]\nid = "no-agents"\neffect = "forbid"\napps = ["agent-sync"]\n'
              'actions = ["livechat.add_agent"]\n')
    d = ask(policy(ROLE_RULE + AGENT_RULE + forbid), "roles.assign", ASSIGN, OWN)
    assert d.code == "policy_denied" and d.rules == ("no-agents",)


def test_the_agents_own_users_rule_holds_for_the_role() -> None:
    # roles.assign may touch anyone's roles here; making agents stays own users only.
    wide = ROLE_RULE.replace('user_types = ["bot"]\n', 'user_types = ["bot"]\nany_user = true\n')
    human = {"target_created_by_app": None, "role_privileged": False}
    p = policy(wide + AGENT_RULE)
    assert ask(p, "roles.assign", {"user_id": "u1", "role": "bot"}, human).allowed
    d = ask(p, "roles.assign", ASSIGN, human)
    assert d.code == "policy_denied" and "own users only" in d.message


def test_allowed_the_role_carries_both_actions_rules_and_quotas() -> None:
    p = policy(ROLE_RULE + AGENT_RULE)
    d = ask(p, "roles.assign", ASSIGN, OWN)
    assert d.allowed and d.rules == ("give-agent-role", "make-agents")
    assert "install:inst-1:livechat.add_agent#agents-a-day" in {c.key for c in d.quotas}
    d = ask(p, "users.create", create(roles=["livechat-agent"]), NOT_PRIV)
    assert d.allowed and "install:inst-1:livechat.add_agent#agents-a-day" in {
        c.key for c in d.quotas}
    assert ask(p, "roles.remove", ASSIGN, OWN).allowed


def test_other_roles_are_decided_alone() -> None:
    p = policy(ROLE_RULE)
    d = ask(p, "roles.assign", {"user_id": "u1", "role": "bot"}, OWN, grants=ROLES_ONLY)
    assert d.allowed and d.rules == ("give-agent-role",)
    assert ask(p, "users.create", create(roles=["bot"]), NOT_PRIV, grants=ROLES_ONLY).allowed


def test_the_demo_policy_still_lets_agent_sync_create_agents() -> None:
    d = ask(demo_policy(), "users.create", create(roles=["livechat-agent"]), NOT_PRIV)
    assert d.allowed and "agent-sync-agents" in d.rules
