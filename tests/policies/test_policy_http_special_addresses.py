"""http.request to addresses IANA's special-purpose registry marks not globally reachable,
whatever the interpreter's `ipaddress` tables say (`policies.netcheck.is_public`).

Python 3.11's `is_global` knew only 192.0.0.0/29 and 192.0.0.170/31 of the IETF Protocol
Assignments block 192.0.0.0/24, so a listed name whose DNS (its owner's) answered 192.0.0.192,
a cloud instance metadata address in SSRF references, was decided as a public service; in a
network namespace holding that address the request went out and the answer came back.
"""
from __future__ import annotations

import pytest
from polhelp import ask, policy

P = policy('[[rule]]\nid="h"\neffect="permit"\napps=["a"]\nactions=["http.request"]\n'
           '[rule.when]\ndomains=["api.example.com"]\n')
ARGS = {"method": "GET", "url": "http://api.example.com/opc/v1/instance/"}


@pytest.mark.parametrize("address", ["192.0.0.192", "192.0.0.8", "192.0.0.100",
                                     "192.0.0.255", "::ffff:192.0.0.192", "64:ff9b::c000:c0",
                                     "2002:c000:c0::1"])
def test_an_ietf_protocol_assignment_is_no_public_address(address: str) -> None:
    d = ask(P, "http.request", ARGS, {"resolved_ips": [address]}, app="a")
    assert not d.allowed and "allow_private" in d.message, address


@pytest.mark.parametrize("address", ["192.0.0.9", "192.0.0.10", "192.0.1.1", "93.184.216.34"])
def test_the_globally_reachable_ones_stay_public(address: str) -> None:
    assert ask(P, "http.request", ARGS, {"resolved_ips": [address]}, app="a").allowed, address
