"""`Policy.plan` and `Policy.charges` work out once per policy object which rules apply to an app's
action and what its call charges. They are indexes, not decisions: the answers must be those the
rules and quotas give worked out afresh, for the app and install asked about and no other, and
the store of them stays bounded."""
from __future__ import annotations

import pytest
from polhelp import ALL_PERMS, ask, create, demo_policy, policy

from policies import Request, decide
from policies import policy as policy_module
from policies.types import QuotaCharge
from policies.vocabulary import ACTIONS

_APPS = ("agent-sync", "proxy-agent", "chatbot-handover", "crm-sync", "someone-else")


def test_plans_and_charges_are_the_rules_and_quotas_afresh() -> None:
    p = demo_policy()
    for app in _APPS:
        for action in ACTIONS:
            rules = [r for r in p.rules_for(action) if r.applies_to_app(app)]
            assert p.plan(app, action) == (
                tuple(r for r in rules if r.effect == "forbid"),
                tuple(r for r in rules if r.effect == "permit"))
            fresh = sorted((QuotaCharge(q.key(app, "inst-9"), q.limit, q.window_s, q.scope, q.id)
                            for q in p.quotas
                            if (q.any_app or app in q.apps) and q.action in ("*", action)),
                           key=lambda c: (c.key, c.quota_id))
            assert p.charges(app, "inst-9", action) == tuple(fresh)


def test_one_apps_plan_is_never_anothers() -> None:
    p = policy('[[rule]]\nid="a-reads"\neffect="permit"\napps=["a"]\nactions=["users.get"]\n')
    assert ask(p, "users.get", {"user_id": "u1"}, app="a").allowed
    assert not ask(p, "users.get", {"user_id": "u1"}, app="b").allowed
    assert ask(p, "users.get", {"user_id": "u1"}, app="a").allowed


def test_one_installs_charges_are_never_anothers() -> None:
    p = policy('[[rule]]\nid="r"\neffect="permit"\napps=["a"]\nactions=["users.get"]\n'
               '[[quota]]\nid="q"\napps=["a"]\naction="users.get"\nlimit=3\nwindow="1m"\n')
    one, two = p.charges("a", "inst-1", "users.get"), p.charges("a", "inst-2", "users.get")
    assert [c.key for c in one] != [c.key for c in two]
    assert "inst-1" in one[0].key and "inst-2" in two[0].key


def test_what_is_worked_out_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "MAX_WORKED", 8)
    p = demo_policy()
    first = {(app, action): (p.plan(app, action), p.charges(app, "i", action))
             for app in _APPS for action in ACTIONS}
    assert len(p._worked) <= 8
    again = {(app, action): (p.plan(app, action), p.charges(app, "i", action))
             for app in _APPS for action in ACTIONS}
    assert again == first


def test_an_allow_decision_is_the_installs_own() -> None:
    p = policy('[[rule]]\nid="r"\neffect="permit"\napps=["a"]\nactions=["users.get"]\n'
               '[[rule]]\nid="s"\neffect="permit"\napps=["a"]\nactions=["users.get"]\n'
               '[[quota]]\nid="q"\napps=["a"]\naction="users.get"\nlimit=3\nwindow="1m"\n')
    asked = {"user_id": "u1"}
    first = decide(p, ALL_PERMS, Request("a", "inst-1", "users.get", asked, {}, 1.0))
    second = decide(p, ALL_PERMS, Request("a", "inst-2", "users.get", asked, {}, 1.0))
    again = decide(p, ALL_PERMS, Request("a", "inst-1", "users.get", asked, {}, 1.0))
    assert first.allowed and second.allowed and first == again
    assert first.rules == ("r", "s") and first.message == "permitted by rule(s) r, s"
    assert "inst-1" in first.quotas[0].key and "inst-2" in second.quotas[0].key


def test_an_allow_decision_carries_the_seat_ceiling_for_creations_only() -> None:
    p = demo_policy()
    made = ask(p, "users.create", create(type_="bot"))
    read = ask(p, "users.get", {"user_id": "u1"})
    assert made.allowed and made.seat_ceiling == 20
    assert read.allowed and read.seat_ceiling is None
