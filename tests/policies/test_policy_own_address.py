"""http.request to the host machine's own address (fact `own_ips`): a public address that is the
machine's is refused like a private one unless `allow_private` names it; and the host's reading
of its own addresses from the kernel (`host/bridges/ownaddrs.py`)."""
from __future__ import annotations

from pathlib import Path

from host.bridges.ownaddrs import MachineAddresses, parse_fib_trie, parse_if_inet6
from policies import decide
from policies.loader import load_policy_text
from policies.types import Request

OWN = "93.184.216.34"


def _policy(allow: str = "") -> object:
    return load_policy_text(f'''
schema = 1
name = "http"
[[rule]]
id = "crm"
effect = "permit"
apps = ["crm-sync"]
actions = ["http.request"]
[rule.when]
domains = ["crm.example.com"]
{allow}
''')


def _decide(policy: object, own: list[str]) -> object:
    return decide(policy, frozenset({"http"}), Request(  # type: ignore[arg-type]
        "crm-sync", "i1", "http.request", {"method": "GET", "url": "https://crm.example.com/"},
        {"resolved_ips": [OWN], "own_ips": own}, 0.0))


def test_the_machines_own_public_address_needs_allow_private() -> None:
    assert _decide(_policy(), []).allowed  # type: ignore[attr-defined]
    d = _decide(_policy(), [OWN])
    assert not d.allowed and "this machine's own" in d.message  # type: ignore[attr-defined]
    named = _policy(f'allow_private = ["{OWN}"]')
    assert _decide(named, [OWN]).allowed  # type: ignore[attr-defined]


def test_a_non_address_in_own_ips_is_refused() -> None:
    d = _decide(_policy(), ["not-an-ip"])
    assert not d.allowed and "own_ips" in d.message  # type: ignore[attr-defined]


TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.0
              /8 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 203.0.113.0
        /24 link UNICAST
     |-- 93.184.216.34
        /32 host LOCAL
     |-- 198.18.0.0
        /15 host LOCAL
"""


def test_local_routes_are_read_as_the_machines_addresses(tmp_path: Path) -> None:
    nets = {str(n) for n in parse_fib_trie(TRIE)}
    assert nets == {"127.0.0.0/8", "93.184.216.34/32", "198.18.0.0/15"}  # not the link routes
    (tmp_path / "trie").write_text(TRIE)
    (tmp_path / "inet6").write_text("20010db8000000000000000000000007 04 40 00 80     eth0\n")
    m = MachineAddresses(fib_trie=tmp_path / "trie", if_inet6=tmp_path / "inet6")
    assert m.among([OWN, "93.184.216.35", "198.19.1.1", "2001:db8::7", "::ffff:93.184.216.34",
                    "64:ff9b::5db8:d822", "bogus"]) == [
        OWN, "198.19.1.1", "2001:db8::7", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"]


def test_this_machines_kernel_is_read() -> None:
    m = MachineAddresses()
    assert m.among(["127.0.0.1", "127.1.2.3"]) == ["127.0.0.1", "127.1.2.3"]
    assert parse_if_inet6("00000000000000000000000000000001 01 80 10 80 lo\n") != set()


# A real /proc/net/ipv6_route after `ip -6 route add local 2606:4700:f00d::/64 dev lo` (in a
# network namespace of its own: a listener on `::` there accepted a connection to
# 2606:4700:f00d::5, an address no interface lists), with the machine's usual routes: its
# addresses (flag RTF_LOCAL), a link route, the multicast route and the unreachable default.
ROUTE6 = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
26064700f00d00000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000400 00000001 00000000 80000001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""


def test_an_ipv6_prefix_routed_to_the_machine_is_its_own(tmp_path: Path) -> None:
    """IPv6 "AnyIP": a local route delivers a whole prefix to the machine's listeners, though
    no interface lists its addresses (before: only `if_inet6` was read, so a listed name whose
    DNS answered 2606:4700:f00d::5 reached a listener on `::` as a public service)."""
    (tmp_path / "none").write_text("")
    (tmp_path / "route6").write_text(ROUTE6)
    m = MachineAddresses(fib_trie=tmp_path / "none", if_inet6=tmp_path / "none",
                         ipv6_route=tmp_path / "route6")
    assert m.among(["2606:4700:f00d::5", "2606:4700:f00d:0:ffff::1", "fd00::2",
                    "2606:4700:f00e::5", "fd00::3", "2001:4860::1", "ff02::1"]) == [
        "2606:4700:f00d::5", "2606:4700:f00d:0:ffff::1", "fd00::2"]
    d = decide(_policy(), frozenset({"http"}), Request(  # type: ignore[arg-type]
        "crm-sync", "i1", "http.request", {"method": "GET", "url": "https://crm.example.com/"},
        {"resolved_ips": ["2606:4700:f00d::5"], "own_ips": m.among(["2606:4700:f00d::5"])},
        0.0))
    assert not d.allowed and "this machine's own" in d.message
