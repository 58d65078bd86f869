"""The host machine's own addresses, so an app's request never reaches the machine itself.

A name an operator lists for an app (`domains`) is resolved by DNS its owner controls, and it may
answer with the machine's own public address. That address is public, yet whatever listens on
the machine's wildcard address (a database, an admin port, a second Stockade's console behind a
proxy) answers there as it would on loopback. The gate hands the engine, as fact `own_ips`, the
request's addresses that are the machine's own, and the engine treats them as it treats private
ones: reachable only when the permit's `allow_private` names them (`policies/engine.py`).

The addresses come from the kernel: IPv4 from `/proc/net/fib_trie` (every route of type LOCAL,
a single address or a whole prefix routed to the machine), IPv6 from `/proc/net/if_inet6` and
every route flagged local in `/proc/net/ipv6_route` (a whole prefix routed to the machine, as
`ip -6 route add local PREFIX dev lo` makes: IPv6 "AnyIP"). The host's own network namespace is
read (the apps' children have their own, with nothing in it).
"""
from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from policies.netcheck import IPAddress, embedded_ipv4

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")
IPV6_ROUTE = Path("/proc/net/ipv6_route")
# The kernel's RTF_LOCAL route flag (include/uapi/linux/ipv6_route.h): the prefix is delivered
# to this machine. Guards the machine's listeners: a local IPv6 prefix is in no address list
# (`if_inet6`), and a listener on `::` answered any address of it, which the engine took for a
# public service.
RTF_LOCAL = 0x80000000
# How long a reading is reused. Guards the gate's path from a /proc read per HTTP call; an
# address added to the machine is known within this time.
REFRESH_S = 5.0


def parse_fib_trie(text: str) -> set[IPNetwork]:
    """The LOCAL routes of a `/proc/net/fib_trie`: each `|-- ADDRESS` line is followed by its
    routes (`/32 host LOCAL`, `/8 host LOCAL` for a prefix routed to the machine)."""
    out: set[IPNetwork] = set()
    address: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            address = stripped[4:].strip()
        elif address is not None and stripped.startswith("/") and stripped.endswith(" LOCAL"):
            prefix = stripped[1:].split()[0]
            try:
                out.add(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
            except ValueError:
                continue
    return out


def parse_if_inet6(text: str) -> set[IPNetwork]:
    out: set[IPNetwork] = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            try:
                out.add(ipaddress.ip_network(int(fields[0], 16).to_bytes(16, "big")))
            except ValueError:
                continue
    return out


def parse_ipv6_route(text: str) -> set[IPNetwork]:
    """The local routes of a `/proc/net/ipv6_route`: destination, prefix length (hex), ...,
    flags (hex, the ninth field)."""
    out: set[IPNetwork] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 9 or len(fields[0]) != 32:
            continue
        try:
            if int(fields[8], 16) & RTF_LOCAL:
                out.add(ipaddress.IPv6Network((int(fields[0], 16), int(fields[1], 16)),
                                              strict=False))
        except ValueError:
            continue
    return out


class MachineAddresses:
    """The machine's own addresses, read again at most every REFRESH_S."""

    def __init__(self, fib_trie: Path = FIB_TRIE, if_inet6: Path = IF_INET6,
                 ipv6_route: Path = IPV6_ROUTE) -> None:
        self._paths = fib_trie, if_inet6, ipv6_route
        self._lock = threading.Lock()
        self._read_at = -REFRESH_S
        self._nets: frozenset[IPNetwork] = frozenset()

    def networks(self) -> frozenset[IPNetwork]:
        with self._lock:
            if time.monotonic() - self._read_at >= REFRESH_S:
                nets: set[IPNetwork] = set()
                for path, parse in zip(self._paths,
                                       (parse_fib_trie, parse_if_inet6, parse_ipv6_route),
                                       strict=True):
                    try:
                        nets |= parse(path.read_text())
                    except OSError:
                        continue  # no IPv6, or no /proc: nothing known of that family
                self._nets, self._read_at = frozenset(nets), time.monotonic()
            return self._nets

    def among(self, addresses: Iterable[str]) -> list[str]:
        """Those of `addresses` that are the machine's own (as given; the engine parses them)."""
        nets = self.networks()
        out: list[str] = []
        for text in addresses:
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue  # the engine refuses a non-address in resolved_ips itself
            if any(c in n for c in _forms(ip) for n in nets):
                out.append(text)
        return out


def _forms(ip: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 addresses an IPv6 one carries to, as the engine's
    `is_public` looks inside them."""
    return [ip] if isinstance(ip, ipaddress.IPv4Address) else [ip, *embedded_ipv4(ip)]


MACHINE = MachineAddresses()
