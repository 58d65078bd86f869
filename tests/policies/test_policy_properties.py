"""Hypothesis properties: order independence, forbid monotonicity, no permits = deny, no admin."""
from __future__ import annotations

import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polhelp import ALL_PERMS

from policies import Request, decide
from policies.fmt import format_policy
from policies.loader import parse_text
from policies.model import PolicyFile, Rule, When
from policies.policy import compile_policy
from policies.vocabulary import ACTIONS, ADMIN_CLASS_ROLES

APPS = ["a", "b"]
ROLES = ["bot", "livechat-agent", "agent", "admin", "owner"]
TYPES = ["bot", "user", "app", "guest"]
ACTION_NAMES = ["users.create", "roles.assign", "users.get", "livechat.add_agent",
                "persistence.get", "users.set_custom_fields"]
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

when_st = st.builds(
    When,
    user_types=st.none() | st.lists(st.sampled_from(TYPES), max_size=3),
    roles=st.none() | st.lists(st.sampled_from(ROLES), max_size=3),
    custom_field_keys=st.none() | st.lists(st.sampled_from(["externalId", "x"]), max_size=2),
    any_user=st.booleans(),
)


@st.composite
def rules(draw: st.DrawFn, effect: str | None = None) -> list[Rule]:
    n = draw(st.integers(0, 6))
    out = []
    for i in range(n):
        out.append(Rule(
            id=f"r{i}",
            effect=effect or draw(st.sampled_from(["permit", "forbid"])),
            apps=draw(st.lists(st.sampled_from([*APPS, "*"]), min_size=1, max_size=2)),
            actions=draw(st.lists(st.sampled_from([*ACTION_NAMES, "users.read"]), min_size=1,
                                  max_size=3)),
            when=draw(when_st),
        ))
    return out


@st.composite
def requests(draw: st.DrawFn) -> Request:
    action = draw(st.sampled_from(ACTION_NAMES))
    args: dict[str, Any] = {}
    if action == "users.create":
        args = {"username": "u", "name": "n", "type": draw(st.sampled_from(TYPES))}
        if draw(st.booleans()):
            args["roles"] = draw(st.lists(st.sampled_from(ROLES), max_size=2))
        if draw(st.booleans()):
            args["custom_fields"] = {draw(st.sampled_from(["externalId", "x"])): "v"}
    elif action == "roles.assign":
        args = {"user_id": "u", "role": draw(st.sampled_from(ROLES))}
    elif action == "users.set_custom_fields":
        args = {"user_id": "u", "fields": {draw(st.sampled_from(["externalId", "x"])): 1}}
    elif action == "persistence.get":
        args = {"key": "k"}
    else:
        args = {"user_id": "u"}
    facts = draw(st.fixed_dictionaries({}, optional={
        "role_privileged": st.booleans(),
        "target_created_by_app": st.sampled_from(APPS),
        "target_is_own_app_user": st.booleans(),
    }))
    return Request(draw(st.sampled_from(APPS)), "i", action, args, facts, 0.0)


def pol(rs: list[Rule]) -> Any:
    return compile_policy([("t", PolicyFile.model_validate(
        {"schema": 1, "name": "t", "rule": [r.model_dump() for r in rs]}))])


@FAST
@given(rules(), requests(), st.randoms(use_true_random=False))
def test_rule_order_never_matters(rs: list[Rule], req: Request, rnd: Any) -> None:
    shuffled = list(rs)
    rnd.shuffle(shuffled)
    assert decide(pol(rs), ALL_PERMS, req) == decide(pol(shuffled), ALL_PERMS, req)


@FAST
@given(rules(), rules(effect="forbid"), requests())
def test_adding_forbids_never_allows_more(rs: list[Rule], forbids: list[Rule],
                                          req: Request) -> None:
    extra = [f.model_copy(update={"id": f"f{i}"}) for i, f in enumerate(forbids)]
    before = decide(pol(rs), ALL_PERMS, req)
    after = decide(pol(rs + extra), ALL_PERMS, req)
    if not before.allowed:
        assert not after.allowed


@FAST
@given(rules(effect="forbid"), requests())
def test_no_permits_means_deny(rs: list[Rule], req: Request) -> None:
    assert not decide(pol(rs), ALL_PERMS, req).allowed


ADMIN_SPELLINGS = st.sampled_from(sorted(ADMIN_CLASS_ROLES)).flatmap(
    lambda r: st.builds(
        lambda variant, pad: variant + pad,
        st.sampled_from([r, r.upper(), r.title(), r.replace("a", "а"), r.replace("o", "о"),
                         unicodedata.normalize("NFKD", r),
                         "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in r)]),
        st.sampled_from(["", "\u200b", "\u00ad", "\n", " ", "\u2060"]),
    )
)


@FAST
@given(ADMIN_SPELLINGS, st.sampled_from(["roles.assign", "roles.remove", "users.create"]),
       st.booleans())
def test_admin_class_roles_never_allowed(role: str, action: str, priv: bool) -> None:
    p = pol([Rule(id="p", effect="permit", apps=["*"], actions=["*"],
                  when=When(roles=[*sorted(ADMIN_CLASS_ROLES), role.strip()], any_user=True,
                            user_types=["bot", "user"]))])
    args: dict[str, Any] = ({"user_id": "u", "role": role} if action != "users.create" else
                            {"username": "x", "name": "x", "type": "bot", "roles": [role]})
    facts = {"role_privileged": priv, "target_created_by_app": "a"}
    d = decide(p, ALL_PERMS, Request("a", "i", action, args, facts, 0.0))
    assert not d.allowed


@FAST
@given(rules(), st.text(max_size=30))
def test_fmt_idempotent_and_preserves_meaning(rs: list[Rule], desc: str) -> None:
    pf = PolicyFile.model_validate({"schema": 1, "name": "t", "description": desc,
                                    "rule": [r.model_dump() for r in rs]})
    once = format_policy(pf)
    src, findings = parse_text(once, "x")
    assert src.model == pf, findings
    assert format_policy(src.model, once) == once


def test_every_action_is_reachable_only_through_its_permission() -> None:
    p = pol([Rule(id="p", effect="permit", apps=["*"], actions=["*"])])
    for name, spec in ACTIONS.items():
        d = decide(p, ALL_PERMS - {spec.permission}, Request("a", "i", name, {}, {}, 0.0))
        assert d.code == "permission_denied", name
