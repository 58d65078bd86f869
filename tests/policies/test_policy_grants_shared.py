"""The gate's grant step and the engine's policy-free refusals, shared with the author harness
(`policies/grants.py`, `policies.engine.unconditional_refusal`): one copy, same answers."""
from __future__ import annotations

from policies.engine import decide, unconditional_refusal
from policies.grants import grant_refusal, undeclared_roles
from policies.loader import load_policy_text
from policies.types import Request
from policies.vocabulary import ACTIONS

DECLARED = {"users.create": frozenset({"bot"}), "roles.assign": frozenset({"bot"})}


def test_declared_roles_narrow_the_grant() -> None:
    spec = ACTIONS["roles.assign"]
    assert undeclared_roles(DECLARED.get, spec, {"role": "livechat-agent"}) == ["livechat-agent"]
    assert undeclared_roles(DECLARED.get, spec, {"role": "bot"}) == []
    assert undeclared_roles(lambda p: None, spec, {"role": "anything"}) == []
    why = grant_refusal("a", {"roles.assign"}, {"roles.assign"}, DECLARED.get, spec,
                        {"user_id": "u", "role": "livechat-agent"})
    assert "role(s) livechat-agent not declared for 'roles.assign'" in why
    assert "lacks permission 'roles.assign'" in grant_refusal(
        "a", {"roles.assign"}, set(), DECLARED.get, spec, {"role": "bot"})


def test_unconditional_refusal_says_what_decide_says() -> None:
    grants = frozenset({"roles.assign", "users.create"})
    facts = {"role_privileged": False, "target_created_by_app": "a"}
    policy = load_policy_text('schema = 1\nname = "p"\n[[rule]]\nid = "r"\neffect = "permit"\n'
                              'apps = ["a"]\nactions = ["roles.assign"]\n[rule.when]\n'
                              'roles = ["livechat-agent"]\n[[quota]]\nid = "q"\napps = ["a"]\n'
                              'action = "roles.assign"\nlimit = 5\nwindow = "1h"\n'
                              'scope = "install"\n')
    for action, args in [("roles.assign", {"user_id": "u", "role": "livechat-agent"}),
                         ("users.create", {"username": 123, "name": "n", "type": "bot"}),
                         ("users.create", {"username": "x", "type": "bot"})]:
        req = Request("a", "i", action, args, facts, 0.0)
        shared = unconditional_refusal(grants, req)
        decided = decide(policy, grants, req)
        assert shared is not None and not decided.allowed
        assert (shared.code, shared.message) == (decided.code, decided.message)
    assert unconditional_refusal(grants, Request(
        "a", "i", "roles.assign", {"user_id": "u", "role": "bot"}, facts, 0.0)) is None
