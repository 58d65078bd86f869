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
    rate_key,
)
from host.server.ratelimit import WidgetLimits

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
        assert LOCAL.client(PROXY, [spelling]) == "2001:db8::/64"  # an IPv6 client: its /64
    assert LOCAL.client(PROXY, ["::ffff:203.0.113.7"]) == "203.0.113.7"
    for key in (LOCAL.client(PROXY, [f"198.51.100.{i}"]) for i in range(3)):
        assert str(ipaddress.ip_address(key)) == key
    key = LOCAL.client(PROXY, ["2001:db8:1:2:3:4:5:6"])
    assert str(ipaddress.ip_network(key, strict=True)) == key


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


# IPv6: a client is handed a whole /64 (SLAAC, privacy addresses) and may send from any of its
# 2**64 addresses, so the key is the /64, not the address (`clientaddr.rate_key`).
SUBNET = "2001:db8:1:2"


def _rotated(n: int, subnet: str = SUBNET) -> list[str]:
    """`n` different addresses in one /64, as a client rotating its interface id would use."""
    return [f"{subnet}:{i:x}:{i * 7919 % 65536:x}:a{i % 4096:03x}:{i + 1:x}" for i in range(n)]


def test_an_ipv6_peer_rotating_addresses_in_its_64_shares_one_limit() -> None:
    """The attack, from the TCP peer: 200 addresses of one /64, each a call. Before: 200 keys,
    each a fresh limit (200 registrations where 1 a minute is allowed)."""
    clock = [1000.0]
    limits = WidgetLimits(12, clock=lambda: clock[0])  # one registration a minute per client
    keys = [TrustedProxies().client(peer, []) for peer in _rotated(200)]
    answers = [limits.refused("POST", "livechat/visitor", True, key) for key in keys]
    allowed = sum(a is None for a in answers)
    assert allowed == 1 and answers[0] is None, f"{allowed} of 200 registrations allowed"
    assert set(keys) == {f"{SUBNET}::/64"}
    # Another /64 is another client.
    other = TrustedProxies().client("2001:db8:1:3::1", [])
    assert other == "2001:db8:1:3::/64"
    assert limits.refused("POST", "livechat/visitor", True, other) is None


def test_a_forwarded_ipv6_client_is_its_64() -> None:
    # Behind a trusted proxy too: the address it appended, keyed by its /64.
    assert {LOCAL.client(PROXY, [hop]) for hop in _rotated(50)} == {f"{SUBNET}::/64"}
    assert LOCAL.client(PROXY, ["198.51.100.7, 2001:db8:1:3:ffff::9"]) == "2001:db8:1:3::/64"
    # Whether a hop is a trusted proxy is decided on its whole address, never its /64: an
    # address beside a trusted IPv6 proxy is a client, not skipped.
    v6 = TrustedProxies(["2001:db8:f::1"])
    assert v6.client("2001:db8:f::1", ["2001:db8:f::2"]) == "2001:db8:f::/64"
    assert v6.client("2001:db8:f::1", ["2001:db8:9::5, 2001:db8:f::1"]) == "2001:db8:9::/64"
    # No header: the proxy's own /64.
    assert v6.client("2001:db8:f::1", []) == "2001:db8:f::/64"


def test_ipv4_is_keyed_by_its_address_and_mapped_ipv4_as_ipv4() -> None:
    assert [TrustedProxies().client(f"203.0.113.{i}", []) for i in (7, 8)] == [
        "203.0.113.7", "203.0.113.8"]
    assert LOCAL.client(PROXY, ["198.51.100.1"]) != LOCAL.client(PROXY, ["198.51.100.2"])
    # Mapped IPv4 is IPv4, never the /64 "::/64" every mapped address lies in.
    assert TrustedProxies().client("::ffff:203.0.113.7", []) == "203.0.113.7"
    assert LOCAL.client(PROXY, ["::ffff:203.0.113.8"]) == "203.0.113.8"
    assert rate_key(ipaddress.ip_address("::ffff:203.0.113.9")) == "203.0.113.9"
    assert rate_key(ipaddress.ip_address("203.0.113.9")) == "203.0.113.9"
    assert rate_key(ipaddress.ip_address("2001:DB8:1:2:0:0:0:1")) == "2001:db8:1:2::/64"
