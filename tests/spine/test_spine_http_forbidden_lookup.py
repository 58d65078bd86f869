"""A host name a forbid covers is never looked up, through the real gate (a home, its policy,
ledger and install; no child: calls enter at `Gate.handle`).

The gate looks a request's name up before the policy decides, and a lookup is a DNS query to
whoever serves that name. Only names a permit lists are looked up (`lists_endpoint`), but a
forbid beats any permit: a name the operator forbade inside a permitted domain (a zone served
by another DNS server, such as an internal one) was still queried, with whatever the app put
in it, before the forbid refused the request."""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import policy_rig

from host.errors import GateError

POLICY = '''
schema = 1
name = "http"
[[rule]]
id = "crm-api"
effect = "permit"
apps = ["crm"]
actions = ["http.request"]
[rule.when]
domains = ["*.example.test"]
[[rule]]
id = "no-internal"
effect = "forbid"
apps = ["crm"]
actions = ["http.request"]
[rule.when]
domains = ["*.internal.example.test", "secret.example.test"]
'''


def test_a_forbidden_name_is_refused_without_a_lookup(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, "crm", ["http"], {"http": POLICY})
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return ["93.184.216.34"]
    rig.gate.resolve = resolve
    for url in ["https://c2VjcmV0.internal.example.test/", "https://secret.example.test/"]:
        with pytest.raises(GateError) as refused:
            rig.gate.handle(rig.session, "http.request", {"method": "GET", "url": url})
        assert refused.value.code == "permission_denied"
        assert "no-internal" in refused.value.message  # refused by the forbid, as before
    assert asked == [], asked  # before: both names were queried first
    # a permitted name is still looked up (and then decided with its addresses)
    with pytest.raises(GateError):  # no http.request action in this rig: nothing is sent
        rig.gate.handle(rig.session, "http.request",
                        {"method": "GET", "url": "https://api.example.test/"})
    assert asked == ["api.example.test"]
