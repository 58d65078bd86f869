"""Lint and engine agree on the small gaps a review found (probes 1 and 2): each finding says
what the engine does, and a value the README refuses is refused."""
from __future__ import annotations

import pytest
from polhelp import ask, unlinted

from policies.loader import load_sources, parse_text

HEAD = 'schema = 1\nname = "t"\n'


def _codes(body: str, head: str = HEAD) -> list[str]:
    src, errs = parse_text(head + body, "p.toml")
    return [f.code for f in errs] or [f.code for f in load_sources([src]).findings]


def _rule(effect: str, actions: str, when: str) -> str:
    return (f'[[rule]]\nid = "r"\neffect = "{effect}"\napps = ["a"]\nactions = {actions}\n'
            f"[rule.when]\n{when}")


def test_a_set_custom_fields_permit_without_keys_allows_not_even_an_empty_map() -> None:
    body = _rule("permit", '["users.set_custom_fields"]', "any_user = true\n")
    assert "STK028" in _codes(body)
    d = ask(unlinted(body), "users.set_custom_fields", {"user_id": "u", "fields": {}},
            {"target_created_by_app": "a"}, app="a")
    assert not d.allowed and "custom_field_keys" in d.message, d
    # With the list, an empty map is still a call the rule allows (it names no key).
    listed = unlinted(_rule("permit", '["users.set_custom_fields"]',
                            'custom_field_keys = ["k"]\n'))
    assert ask(listed, "users.set_custom_fields", {"user_id": "u", "fields": {}},
               {"target_created_by_app": "a"}, app="a").allowed


def test_b_stk036_reads_the_role_as_the_rule_compiles_it() -> None:
    for spelling in ("livechat-agent", "LiveChat-Agent"):
        body = _rule("permit", '["roles.assign"]', f'roles = ["{spelling}"]\n')
        assert _codes(body).count("STK036") == 1, spelling
    both = _rule("permit", '["roles.assign"]', 'roles = ["livechat-agent", "LIVECHAT-AGENT"]\n')
    assert _codes(both).count("STK036") == 1


@pytest.mark.parametrize("actions,when,asked", [
    ('["roles.assign"]', 'roles = ["admin"]\n', ("roles.assign", {"user_id": "u", "role": "bot"})),
    ('["users.create"]', 'user_types = ["app"]\n',
     ("users.create", {"username": "x", "name": "X", "type": "bot"})),
])
def test_c_a_forbid_whose_list_compiles_empty_is_flagged(
        actions: str, when: str, asked: tuple[str, dict[str, str]]) -> None:
    assert "STK037" in _codes(_rule("forbid", actions, when))
    permit = _rule("permit", actions, 'roles = ["bot"]\nuser_types = ["bot"]\n').replace(
        'id = "r"', 'id = "p"')
    p = unlinted(_rule("forbid", actions, when) + permit)
    d = ask(p, *asked, {"target_created_by_app": "a", "role_privileged": False}, app="a")
    assert d.allowed, d  # what STK037 says: the forbid forbids nothing


def test_d_rest_fields_in_a_forbid_is_meaningless() -> None:
    assert "STK031" in _codes(_rule("forbid", '["rest.call"]', 'rest_fields = ["x"]\n'))


@pytest.mark.parametrize("action,key", [("roles.assign", "roles"), ("http.request", "domains"),
                                        ("users.create", "user_types"),
                                        ("rest.call", "rest_routes")])
def test_e_an_empty_required_list_in_a_permit_is_flagged(action: str, key: str) -> None:
    assert "STK028" in _codes(_rule("permit", f'["{action}"]', f"{key} = []\n"))


def test_f_a_zero_seat_ceiling_is_refused_as_documented() -> None:
    assert "STK018" in _codes("[workspace]\nmax_active_app_users = 0\n")
    assert "STK018" not in _codes("[workspace]\nmax_active_app_users = 1\n")


def test_g_schema_is_an_integer() -> None:
    # fmt reads through the same model: a file that does not validate is never written back.
    assert _codes("", head='schema = true\nname = "t"\n') == ["STK005"]
    assert _codes("", head='schema = 1\nname = "t"\n') == []
