"""STK037: a forbid whose list is empty (`domains = []`, `roles = []`...) matches no request of
the actions that list concerns, so it forbids none of them (the engine's `_forbid_applies`): the
author almost surely meant the opposite, and lint says so."""
from __future__ import annotations

import pytest
from polhelp import ask

from policies.findings import Finding
from policies.loader import load_sources, parse_text

HEAD = 'schema = 1\nname = "t"\n'
PERMITS = (
    '[[rule]]\nid="web"\neffect="permit"\napps=["a1"]\nactions=["http.request"]\n'
    '[rule.when]\ndomains=["*.example.com"]\n'
    '[[rule]]\nid="roles"\neffect="permit"\napps=["a1"]\nactions=["roles.assign", "users.get"]\n'
    '[rule.when]\nroles=["bot"]\n'
    '[[quota]]\nid="q"\napps=["a1"]\naction="*"\nlimit=5\nwindow="1h"\n'
)


def forbid(actions: str, when: str) -> str:
    return (f'[[rule]]\nid="no"\neffect="forbid"\napps=["a1"]\nactions=[{actions}]\n'
            f"[rule.when]\n{when}\n")


def lint(text: str) -> list[Finding]:
    src, pre = parse_text(text, "p.toml")
    assert src.model is not None, pre
    return load_sources([src], pre).findings


@pytest.mark.parametrize(("actions", "key", "action"), [
    ('"http.request"', "domains", "http.request"),
    ('"roles.assign"', "roles", "roles.assign"),
    ('"users.create"', "user_types", "users.create"),
    ('"users.set_custom_fields"', "custom_field_keys", "users.set_custom_fields"),
    ('"rest.call"', "rest_routes", "rest.call"),
])
def test_an_empty_list_in_a_forbid_is_a_warning_naming_rule_and_list(
        actions: str, key: str, action: str) -> None:
    text = HEAD + PERMITS + forbid(actions, f"{key} = []")
    found = [f for f in lint(text) if f.code == "STK037"]
    assert len(found) == 1, found
    (f,) = found
    assert f.severity == "warning"
    assert "rule no" in f.message and f"{key} = []" in f.message and action in f.message
    # located at the key: the last line of the file
    assert (f.line, f.column) == (text.count("\n"), 1)


def test_the_reviewers_file_allows_what_the_forbid_seems_to_refuse() -> None:
    text = HEAD + PERMITS + forbid('"http.request"', "domains = []")
    assert [f.code for f in lint(text) if f.code == "STK037"] == ["STK037"]
    src, _ = parse_text(text, "p.toml")
    pol = load_sources([src]).policy
    assert pol is not None  # a warning: the file still loads...
    d = ask(pol, "http.request", {"method": "GET", "url": "https://x.example.com/"},
            {"resolved_ips": ["93.184.216.34"]}, app="a1")
    assert d.allowed  # ...and, as the finding says, the forbid forbids nothing


def test_no_finding_for_a_listed_or_absent_list_or_a_permit() -> None:
    assert not [f for f in lint(HEAD + PERMITS + forbid('"http.request"',
                                                        'domains = ["x.example.com"]'))
                if f.code == "STK037"]
    assert not [f for f in lint(HEAD + PERMITS + forbid('"http.request"', ""))
                if f.code == "STK037"]
    permit = forbid('"http.request"', "domains = []").replace("forbid", "permit")
    assert not [f for f in lint(HEAD + PERMITS + permit) if f.code == "STK037"]


def test_a_list_that_concerns_none_of_the_actions_is_stk026_not_stk037() -> None:
    codes = [f.code for f in lint(HEAD + PERMITS + forbid('"users.get"', "domains = []"))]
    assert "STK026" in codes and "STK037" not in codes
