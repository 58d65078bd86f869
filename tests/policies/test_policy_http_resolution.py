"""http.request: a listed name that resolves to nothing is refused (never allowed without the
addresses it will connect to); an unlisted name is refused for its domain first."""
from __future__ import annotations

from policies import decide
from policies.loader import load_policy_text
from policies.types import Request

POLICY = load_policy_text('''
schema = 1
name = "http"
[[rule]]
id = "crm"
effect = "permit"
apps = ["crm-sync"]
actions = ["http.request"]
[rule.when]
domains = ["crm.example.com"]
''')


def _req(url: str, ips: list[str] | None) -> Request:
    facts = {} if ips is None else {"resolved_ips": ips}
    return Request("crm-sync", "i1", "http.request", {"method": "POST", "url": url}, facts, 0.0)


def test_listed_name_without_addresses_is_refused() -> None:
    d = decide(POLICY, frozenset({"http"}), _req("https://crm.example.com/x", []))
    assert not d.allowed and "did not resolve" in d.message


def test_unlisted_name_is_refused_for_its_domain() -> None:
    d = decide(POLICY, frozenset({"http"}), _req("https://exfil.example.net/x", []))
    assert not d.allowed and "not listed" in d.message


def test_missing_fact_is_still_refused() -> None:
    d = decide(POLICY, frozenset({"http"}), _req("https://crm.example.com/x", None))
    assert not d.allowed and "resolved_ips" in d.message


def test_public_address_of_a_listed_name_is_allowed() -> None:
    d = decide(POLICY, frozenset({"http"}), _req("https://crm.example.com/x", ["93.184.216.34"]))
    assert d.allowed
