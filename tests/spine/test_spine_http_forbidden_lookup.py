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
from httprig import get, http_policy, record_lookups

from host.errors import GateError

POLICY = http_policy("crm", ["*.example.test"],
                     forbid=("no-internal", ["*.internal.example.test", "secret.example.test"]))


def test_a_forbidden_name_is_refused_without_a_lookup(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, "crm", ["http"], {"http": POLICY})
    asked = record_lookups(rig, lambda _name, _n: ["93.184.216.34"])
    for url in ["https://c2VjcmV0.internal.example.test/", "https://secret.example.test/"]:
        with pytest.raises(GateError) as refused:
            get(rig, url)
        assert refused.value.code == "permission_denied"
        assert "no-internal" in refused.value.message  # refused by the forbid, as before
    assert asked == [], asked  # before: both names were queried first
    # a permitted name is still looked up (and then decided with its addresses)
    with pytest.raises(GateError):  # no http.request action in this rig: nothing is sent
        get(rig, "https://api.example.test/")
    assert asked == ["api.example.test"]
