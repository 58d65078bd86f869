"""Engine semantics: default deny, grants, guardrails, forbid beats permit, own-users, HTTP."""
from __future__ import annotations

import pytest
from polhelp import ALL_PERMS, ask, create, demo_policy, policy, unlinted

from policies import Policy, Request, decide
from policies.engine import MAX_USERNAME

P = demo_policy()
NOT_PRIV = {"role_privileged": False}
OWN = {"target_created_by_app": "agent-sync", "role_privileged": False}
LOOP = {"resolved_ips": ["127.0.0.1"]}


def test_allow_carries_rules_quotas_and_seat_ceiling() -> None:
    d = ask(P, "users.create", create(roles=["bot"], custom_fields={"externalId": "7"}), NOT_PRIV)
    assert d.allowed and d.code == "allow"
    assert d.rules == ("agent-sync-create-users",)
    keys = {c.key: (c.limit, c.window_s, c.scope) for c in d.quotas}
    assert keys["install:inst-1:users.create#agent-sync-user-creation"] == (3, 600, "install")
    assert keys["install:inst-1:*#default-bridge-rate"] == (600, 60, "install")
    assert d.seat_ceiling == 20


def test_missing_grant_names_permission_and_how_to_get_it() -> None:
    d = ask(P, "users.create", create(), NOT_PRIV, grants=frozenset({"users.read"}))
    assert d.code == "permission_denied" and not d.allowed
    assert "'users.create'" in d.message and "manifest" in d.message and "grant" in d.message


def test_unknown_action_and_unknown_args_refused() -> None:
    assert ask(P, "users.delete_everything", {}).code == "policy_denied"
    d = ask(P, "users.get", {"user_id": "u1", "as_app": "other"})
    assert d.code == "policy_denied" and "unknown argument" in d.message
    assert ask(P, "users.get", {}).code == "policy_denied"
    assert ask(P, "users.get", {"user_id": 5}).code == "policy_denied"


def test_default_deny_for_unlisted_app() -> None:
    d = ask(P, "users.get", {"user_id": "u"}, app="stranger")
    assert d.code == "policy_denied" and "no rule permits" in d.message


def test_persistence_allowed_for_any_app_by_baseline() -> None:
    assert ask(P, "persistence.get", {"key": "k"}, app="anyone").allowed


@pytest.mark.parametrize("role", ["admin", "Admin", "ADMIN", "аdmin", "admin\u200b", "ａｄｍｉｎ",
                                  "owner", "livechat-manager", "moderator", " admin", "admin\n"])
def test_admin_class_and_lookalike_roles_refused(role: str) -> None:
    p = unlinted('[[rule]]\nid="r"\neffect="permit"\napps=["agent-sync"]\n'
                 'actions=["roles.assign"]\n[rule.when]\nroles=["admin","owner","bot"]\n'
                 'any_user=true\n')
    d = ask(p, "roles.assign", {"user_id": "u", "role": role}, OWN)
    assert d.code == "guardrail" and not d.allowed
    d2 = ask(p, "users.create", create(roles=[role]), NOT_PRIV)
    assert not d2.allowed


def test_non_canonical_spelling_of_allowed_role_refused() -> None:
    assert ask(P, "roles.assign", {"user_id": "u", "role": "bot"}, OWN).allowed
    assert ask(P, "roles.assign", {"user_id": "u", "role": "Bot"}, OWN).code == "guardrail"


def test_server_privileged_role_refused_and_missing_fact_denies() -> None:
    assert ask(P, "roles.assign", {"user_id": "u", "role": "bot"},
               {**OWN, "role_privileged": True}).code == "guardrail"
    d = ask(P, "roles.assign", {"user_id": "u", "role": "bot"},
            {"target_created_by_app": "agent-sync"})
    assert d.code == "guardrail" and "role_privileged" in d.message


def test_role_not_in_list_names_rule_and_constraint() -> None:
    d = ask(P, "roles.assign", {"user_id": "u", "role": "livechat-agent"}, OWN)
    assert d.code == "policy_denied" and d.rules == ("agent-sync-bot-role",)
    assert "roles" in d.message and "livechat-agent" in d.message


def test_user_type_rules() -> None:
    assert ask(P, "users.create", create(type_="user")).allowed
    assert ask(P, "users.create", create(type_="app")).code == "guardrail"
    assert ask(P, "users.create", create(type_="App")).code == "guardrail"
    assert ask(P, "users.create", create(type_="guest")).code == "policy_denied"


def test_custom_field_keys_and_username_pattern() -> None:
    assert not ask(P, "users.create", create(custom_fields={"salary": 1})).allowed
    assert not ask(P, "users.create", create(username="admin")).allowed
    assert not ask(P, "users.create", create(username="ext-" + "a" * MAX_USERNAME)).allowed


@pytest.mark.parametrize("facts,ok", [
    ({"target_created_by_app": "agent-sync"}, True),
    ({"target_is_own_app_user": True}, True),
    ({"target_created_by_app": "other-app"}, False),
    ({"target_created_by_app": None}, False),
    ({"target_is_own_app_user": "yes"}, False),
    ({}, False),
])
def test_own_users_rule(facts: dict[str, object], ok: bool) -> None:
    d = ask(P, "livechat.add_agent", {"user_id": "u"}, facts)
    assert d.allowed is ok
    d = ask(P, "users.set_custom_fields", {"user_id": "u", "fields": {"externalId": "x"}}, facts)
    assert d.allowed is ok


def test_any_user_widens() -> None:
    p = policy('[[rule]]\nid="r"\neffect="permit"\napps=["agent-sync"]\n'
               'actions=["livechat.add_agent"]\n[rule.when]\nany_user=true\n')
    assert ask(p, "livechat.add_agent", {"user_id": "u"}).allowed


def test_forbid_beats_permit() -> None:
    p = policy('[[rule]]\nid="p"\neffect="permit"\napps=["agent-sync"]\nactions=["users.read"]\n'
               '[[rule]]\nid="f"\neffect="forbid"\napps=["*"]\nactions=["users.get"]\n')
    d = ask(p, "users.get", {"user_id": "u"})
    assert d.code == "policy_denied" and d.rules == ("f",)
    assert ask(p, "users.get_by_username", {"username": "x"}).allowed


def test_forbid_with_constraint_applies_only_when_it_matches() -> None:
    p = policy('[[rule]]\nid="p"\neffect="permit"\napps=["agent-sync"]\nactions=["users.create"]\n'
               '[rule.when]\nuser_types=["bot","user"]\n'
               '[[rule]]\nid="f"\neffect="forbid"\napps=["agent-sync"]\nactions=["users.create"]\n'
               '[rule.when]\nuser_types=["user"]\n'
               '[[quota]]\nid="q"\napps=["agent-sync"]\naction="users.create"\nlimit=1\nwindow="1h"\n')
    assert ask(p, "users.create", create(type_="bot")).allowed
    assert ask(p, "users.create", create(type_="user")).rules == ("f",)


@pytest.mark.parametrize("url,ips,ok", [
    ("http://crm.localtest/api", ["127.0.0.1"], True),
    ("https://CRM.LOCALTEST./api", ["127.0.0.1"], True),
    ("http://crm.localtest/api", ["127.0.0.2"], False),
    ("http://crm.localtest/api", ["127.0.0.1", "10.0.0.1"], False),
    ("http://crm.localtest/api", ["::ffff:10.0.0.1"], False),
    ("http://crm.localtest/api", ["169.254.169.254"], False),
    ("http://crm.localtest/api", [], False),
    ("http://crm.localtest/api", None, False),
    ("http://crm.localtest/api", ["not-an-ip"], False),
    ("http://crm.localtest/api", ["0.0.0.0"], False),
    ("http://crm.localtest.evil.com/", ["127.0.0.1"], False),
    ("http://evil.com#crm.localtest", ["127.0.0.1"], False),
    ("http://evil.com/?crm.localtest", ["127.0.0.1"], False),
    ("http://crm.localtest@evil.com/", ["127.0.0.1"], False),
    ("http://evil.com@crm.localtest/", ["127.0.0.1"], False),
    ("http://evil.com\\@crm.localtest/", ["127.0.0.1"], False),
    ("file:///etc/passwd", ["127.0.0.1"], False),
    ("gopher://crm.localtest/", ["127.0.0.1"], False),
    ("http://127.0.0.1/", ["127.0.0.1"], False),
    ("http://2130706433/", ["127.0.0.1"], False),
    ("http://0x7f.1/", ["127.0.0.1"], False),
    ("http://[::ffff:127.0.0.1]/", ["127.0.0.1"], False),
    ("http://crm.locaItest/", ["127.0.0.1"], False),
    ("http://crm.lоcaltest/", ["127.0.0.1"], False),  # Cyrillic о
])
def test_http_host_and_address_checks(url: str, ips: list[str] | None, ok: bool) -> None:
    facts = {} if ips is None else {"resolved_ips": ips}
    d = ask(P, "http.request", {"method": "GET", "url": url}, facts, app="crm-sync")
    assert d.allowed is ok, d.message


def test_http_public_domain_needs_public_ips() -> None:
    p = policy('[[rule]]\nid="h"\neffect="permit"\napps=["a"]\nactions=["http.request"]\n'
               '[rule.when]\ndomains=["*.example.com"]\n')
    args = {"method": "GET", "url": "https://api.example.com/x"}
    assert ask(p, "http.request", args, {"resolved_ips": ["93.184.216.34"]}, app="a").allowed
    for bad in ("127.0.0.1", "10.1.2.3", "::1", "fe80::1", "::ffff:192.168.0.1", "fc00::1",
                "64:ff9b::a00:1", "2002:c0a8:1::1", "100.64.0.1"):
        assert not ask(p, "http.request", args, {"resolved_ips": [bad]}, app="a").allowed, bad
    apex = {"method": "GET", "url": "https://example.com/"}
    assert not ask(p, "http.request", apex, {"resolved_ips": ["93.184.216.34"]}, app="a").allowed


def test_rest_routes() -> None:
    p = policy('[[rule]]\nid="r"\neffect="permit"\napps=["a"]\nactions=["rest.call"]\n'
               '[rule.when]\nrest_routes=["GET /api/v1/users.info"]\n')
    mapped = {"rest_mapped": True}
    get = {"method": "get", "route": "/api/v1/users.info"}
    assert ask(p, "rest.call", get, mapped, app="a").allowed
    assert not ask(p, "rest.call", {"method": "POST", "route": "/api/v1/users.info"}, mapped,
                   app="a").allowed
    # without the host's word on what the route amounts to, nothing is allowed
    assert not ask(p, "rest.call", get, app="a").allowed
    for route in ("/api/v1/../v1/users.info", "/api/v1/users.info?x=1", "/api/v1//users.info",
                  "/api/v1/users%2Einfo"):
        assert ask(p, "rest.call", {"method": "GET", "route": route}, mapped,
                   app="a").code == "guardrail"


def test_a_rest_route_with_no_bridge_action_needs_rest_fields() -> None:
    bare = policy('[[rule]]\nid="r"\neffect="permit"\napps=["a"]\nactions=["rest.call"]\n'
                  '[rule.when]\nrest_routes=["POST /api/v1/livechat/department"]\n')
    call = {"method": "POST", "route": "/api/v1/livechat/department",
            "body": {"department": {"name": "x"}}}
    unmapped = {"rest_mapped": False}
    d = ask(bare, "rest.call", call, unmapped, app="a")
    assert not d.allowed and "rest_fields" in d.message
    narrow = policy('[[rule]]\nid="r"\neffect="permit"\napps=["a"]\nactions=["rest.call"]\n'
                    '[rule.when]\nrest_routes=["POST /api/v1/livechat/department"]\n'
                    'rest_fields=["department"]\n')
    assert ask(narrow, "rest.call", call, unmapped, app="a").allowed
    wider = {**call, "body": {"department": {"name": "x"}, "agents": []}}
    d = ask(narrow, "rest.call", wider, unmapped, app="a")
    assert not d.allowed and "agents" in d.message


def test_two_quotas_on_one_key_get_separate_logs() -> None:
    p = policy('[[rule]]\nid="r"\neffect="permit"\napps=["a"]\nactions=["users.read"]\n'
               '[[quota]]\nid="q1"\napps=["a"]\naction="users.get"\nlimit=3\nwindow="1m"\n'
               '[[quota]]\nid="q2"\napps=["*"]\naction="users.get"\nlimit=30\nwindow="1h"\n'
               '[[quota]]\nid="q3"\napps=["a"]\naction="users.get"\nlimit=9\nwindow="1d"\nscope="app"\n'
               '[[quota]]\nid="q4"\napps=["a"]\naction="*"\nlimit=9\nwindow="1d"\nscope="workspace"\n')
    d = ask(p, "users.get", {"user_id": "u"}, app="a")
    assert sorted(c.key for c in d.quotas) == [
        "app:a:users.get#q3", "install:inst-1:users.get#q1", "install:inst-1:users.get#q2",
        "workspace:*#q4",
    ]


QUOTA_RULE = ('[[rule]]\nid="r"\neffect="permit"\napps=["a", "b"]\nactions=["users.read"]\n')


@pytest.mark.parametrize("scope", ["install", "app", "workspace"])
def test_a_quotas_counter_key_depends_on_that_quota_alone(scope: str) -> None:
    """Attack (held before the fix): a quota's counter key was suffixed with its id only when
    another quota charged the same key in that request. A workspace quota "2 an hour, any app"
    then counted app-b's calls under `workspace:users.get` and app-a's (named by a second
    workspace quota) under `workspace:users.get#ws`: two rings, four calls an hour. A reload
    adding a second quota moved the first to a fresh ring the same way. Its key must name the
    quota and its scope's subject, nothing else."""
    q = f'[[quota]]\nid="q"\napps=["*"]\naction="users.get"\nlimit=2\nwindow="1h"\nscope="{scope}"\n'
    extra = (f'[[quota]]\nid="extra"\napps=["a"]\naction="users.get"\nlimit=50\nwindow="1h"\n'
             f'scope="{scope}"\n')
    alone, both = policy(QUOTA_RULE + q), policy(QUOTA_RULE + q + extra)

    def key(p: Policy, app: str) -> str:
        d = ask(p, "users.get", {"user_id": "u"}, app=app)
        return {c.quota_id: c.key for c in d.quotas}["q"]

    assert key(alone, "a") == key(both, "a")  # a reload adding "extra" leaves q's ring alone
    assert key(alone, "b") == key(both, "b")
    if scope == "workspace":  # one ring for the whole workspace, whichever app calls
        assert key(both, "a") == key(both, "b") == key(alone, "a")


def test_decision_is_pure() -> None:
    req = Request("agent-sync", "i", "users.create", create(), {}, 5.0)
    assert decide(P, ALL_PERMS, req) == decide(P, ALL_PERMS, req)
