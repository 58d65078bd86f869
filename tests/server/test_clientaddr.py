"""Which client the widget's rate limit counts a call against (`host.server.clientaddr`,
`serve --trusted-proxy`): the TCP peer, unless the peer is a proxy the operator trusts, and then
the address that proxy appended to X-Forwarded-For, never text a client chose."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from host.cli.main import root
from host.server.clientaddr import (
    MAX_FORWARDED_ENTRIES,
    TrustedProxies,
    parse_trusted,
)

PROXY = "127.0.0.1"
LOCAL = TrustedProxies([PROXY])


def test_an_untrusted_peer_is_its_own_key_whatever_it_forwards() -> None:
    for proxies in (TrustedProxies(), LOCAL):
        for forwarded in (["203.0.113.7"], ["203.0.113.7, 198.51.100.1"], ["junk"], []):
            assert proxies.client("127.0.0.2", forwarded) == "127.0.0.2"
    # A dual-stack listener's name for an IPv4 peer is the same key as the IPv4 one.
    assert TrustedProxies().client("::ffff:127.0.0.2", ["203.0.113.7"]) == "127.0.0.2"


def test_behind_a_trusted_proxy_each_visitor_is_the_address_it_appended() -> None:
    assert LOCAL.client(PROXY, ["203.0.113.7"]) == "203.0.113.7"
    assert LOCAL.client(PROXY, ["198.51.100.1"]) == "198.51.100.1"
    # Entries a client wrote itself stand left of the one its proxy appended: never read.
    assert LOCAL.client(PROXY, ["10.9.9.9, 192.0.2.1, 203.0.113.7"]) == "203.0.113.7"
    # Header lines are one list, in order: the last line's last entry is the nearest.
    assert LOCAL.client(PROXY, ["10.9.9.9", "203.0.113.7"]) == "203.0.113.7"
    # The proxy reached over IPv4 mapped in IPv6 is the same trusted proxy.
    assert LOCAL.client("::ffff:127.0.0.1", ["203.0.113.7"]) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_skipped_from_the_right() -> None:
    chain = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert chain.client(PROXY, ["203.0.113.7, 10.1.2.3, 10.4.5.6"]) == "203.0.113.7"
    # Every entry a trusted proxy: the peer's own address.
    assert chain.client(PROXY, ["10.1.2.3, 127.0.0.1"]) == PROXY


def test_a_key_is_one_spelling_of_one_address() -> None:
    for spelling in ("2001:DB8::1", "2001:db8:0:0:0:0:0:1", " 2001:db8::1 ", "2001:db8::0001"):
        assert LOCAL.client(PROXY, [spelling]) == "2001:db8::1"
    assert LOCAL.client(PROXY, ["::ffff:203.0.113.7"]) == "203.0.113.7"
    for key in (LOCAL.client(PROXY, [f"198.51.100.{i}"]) for i in range(3)):
        assert str(ipaddress.ip_address(key)) == key


@pytest.mark.parametrize("forwarded", [
    [], [""], ["unknown"], ["203.0.113.7:4711"], ["[2001:db8::1]"], ["fe80::1%eth0"],
    ["fe80::1%1"], ["203.0.113.7, "], ["203.0.113.7,,"], ["1.2.3"], ["01.2.3.4"],
    ["203.0.113.7\x00"], ["\u0661.2.3.4"],
    ["203.0.113.7, evil.example"], ["a" * 60_000], ["203.0.113.7, " + "9" * 60_000],
])
def test_a_missing_or_malformed_header_keys_by_the_proxy(forwarded: list[str]) -> None:
    # Before (no resolver): each spelling of these would have been a key a client chose
    # ("fe80::1%1" and "fe80::1%2" two limits). Now the proxy's own address.
    assert LOCAL.client(PROXY, forwarded) == PROXY


def test_the_walk_reads_a_bounded_number_of_entries() -> None:
    client, hop = "203.0.113.7", "10.0.0.1"
    chain = TrustedProxies([PROXY, "10.0.0.0/8"])
    within = [client + ", " + ", ".join([hop] * (MAX_FORWARDED_ENTRIES - 1))]
    assert chain.client(PROXY, within) == client
    beyond = [client + ", " + ", ".join([hop] * MAX_FORWARDED_ENTRIES)]
    assert chain.client(PROXY, beyond) == PROXY  # not reached: the proxy's address
    # A header of 30,000 entries costs what 16 do: a wall of trusted hops, or of clients.
    assert chain.client(PROXY, [", ".join([hop] * 30_000)]) == PROXY
    assert chain.client(PROXY, [", ".join(["198.51.100.9"] * 30_000)]) == "198.51.100.9"


def test_a_trusted_proxy_is_an_address_or_a_network() -> None:
    assert str(parse_trusted("127.0.0.1")) == "127.0.0.1/32"
    assert str(parse_trusted(" 10.0.0.0/8 ")) == "10.0.0.0/8"
    assert str(parse_trusted("::1")) == "::1/128"
    assert str(parse_trusted("::ffff:127.0.0.0/104")) == "127.0.0.0/8"  # mapped: as IPv4
    for bad in ("localhost", "10.0.0.1/8", "1.2.3.4/33", "", "fe80::1%eth0", "127.0.0.1:80",
                "*"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_trusted(bad)


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.1/8", "300.1.2.3"])
def test_serve_refuses_a_bad_trusted_proxy(tmp_path: Path, bad: str) -> None:
    r = CliRunner().invoke(root, ["--home", str(tmp_path / "home"), "serve",
                                  "--trusted-proxy", "127.0.0.1", "--trusted-proxy", bad])
    assert r.exit_code == 2, r.output
    assert "--trusted-proxy" in r.output and repr(bad) in r.output, r.output
    assert not (tmp_path / "home").exists()  # refused before anything was made
