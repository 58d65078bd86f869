"""Which client a widget call is counted against (`host.server.ratelimit`), behind a reverse
proxy the operator names (`stockade serve --trusted-proxy ADDR_OR_CIDR`, repeatable).

Why: the widget's rate limit is kept per client, told by its address, and the address the
server sees is the TCP peer's. Behind a reverse proxy on the machine every visitor's peer is the
proxy, so all of them shared one limit: one visitor's flood refused everyone, or the operator
turned the limit off. The proxy says whom it serves in `X-Forwarded-For`, appending its own
peer to what the request brought.

What it guards: a client choosing its own limit. A header is believed only from a peer inside
a network the operator trusts (none by default: then the key is the TCP peer, whatever a
request says). From such a peer the header (all its lines, in order) is read from the right,
skipping addresses that are themselves trusted proxies (a chain of them); the first other
address is the client, because it is the one the operator's nearest proxy appended: whatever a
client wrote itself stands left of it and is never read. A header that is missing, that holds
something other than an IP address where the walk reaches it, or whose entries within the
walk's bound are all trusted, keys the call by the proxy's own address, never by text a client
chose. A key is always a parsed address written one way (`ipaddress`'s form, an IPv4 address
mapped in IPv6 as IPv4, no IPv6 zone), and for IPv6 the /64 network holding it (`rate_key`:
`2001:db8:1:2::/64`), because a /64 is what one subscriber or host is handed and it may send
from any of its addresses: no two spellings, and no two addresses of one IPv6 client, are two
limits, and the distinct keys a client can make are bounded by the limiter's table
(`ratelimit.MAX_TRACKED_KEYS`). An address is keyed the same whether it is the TCP peer's or
one a trusted proxy appended.
The walk reads at most `MAX_FORWARDED_ENTRIES` entries, each at most `MAX_ENTRY_CHARS` long:
a long header costs no more than a short one (the header block itself is capped,
`host.server.listen.MAX_HEAD_BYTES`).

A trusted address is trusted for every process that connects from it: on the machine, any
local user can connect from a loopback address and write the header. The limit bounds what
the proxy's remote clients can send; it was never a bound on local users (127/8 is theirs).

What it never does: name anyone to the console. The console binds a session to the local
account holding the TCP connection (`host.console.peer`), read from the connection itself; no
listener rewrites the request's client from a forwarding header (`host.server.listen
.http_config`, `proxy_headers=False`), and nothing here changes the request: the key is the
rate limiter's alone.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Entries of X-Forwarded-For read at most, from the right: a security bound (DESIGN rule 13).
# One is the client the nearest trusted proxy appended; the rest are room for a chain of
# trusted proxies (each appends the one before it). A header with more entries costs the same.
MAX_FORWARDED_ENTRIES = 16
# The longest text an entry may be and still be read as an address (an IPv6 address with an
# IPv4 tail, `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`, is 45): the parser is never handed
# a long string, and a longer entry is not an address.
MAX_ENTRY_CHARS = 45
# IPv4 addresses mapped in IPv6 (`::ffff:a.b.c.d`), as a dual-stack listener names IPv4 peers.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# The leading bits of an IPv6 address that name one client to the rate limit: a security bound
# (without it the limit does not hold for IPv6). A /64 is the unit a single subscriber or host is
# assigned (the low 64 bits are the interface identifier, RFC 4291; SLAAC and temporary privacy
# addresses, RFC 8981, are picked freely inside it, and a provider hands a subscriber a /64 or
# more, RFC 6177), so one client can send each call from a new address of its own: keyed per
# address, each call had a fresh limit. Keyed per /64, as common rate limiters key IPv6, they
# are one client. The cost: hosts sharing one /64 (a LAN behind one router) share one limit, as
# hosts behind one IPv4 NAT share one address.
IPV6_CLIENT_PREFIX = 64


def parse_trusted(value: str) -> Network:
    """A trusted proxy as the operator wrote it: an address (one host) or a network in CIDR
    form. Raises ValueError saying what is wrong, quoting `value`."""
    text = value.strip()
    if "%" in text:
        raise ValueError(f"{value!r} has an IPv6 zone: name the address or network alone")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        why = "has host bits set (name the network's first address)" \
            if "host bits" in str(exc) else "is not an IP address or a network in CIDR form"
        raise ValueError(f"{value!r} {why}") from None
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED):
        # Matched against peers as they are keyed (mapped addresses as IPv4): as IPv4 too.
        return ipaddress.IPv4Network((int(net.network_address) & 0xFFFF_FFFF, net.prefixlen - 96))
    return net


def _address(text: str) -> Address | None:
    """`text` as one address (mapped IPv4 as IPv4), or None if it is anything else."""
    text = text.strip(" \t")
    if not text or len(text) > MAX_ENTRY_CHARS or "%" in text:  # "%": an IPv6 zone
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def rate_key(ip: Address) -> str:
    """The rate limit's key for client address `ip`, one spelling each: an IPv4 address (one
    mapped in IPv6 too) as itself, an IPv6 address as its /64 (`2001:db8:1:2::/64`)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # else every IPv4 client would be the one "::/64"
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


class TrustedProxies:
    """The proxies whose `X-Forwarded-For` names the client (see the module docstring)."""

    def __init__(self, networks: Iterable[str | Network] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            parse_trusted(n) if isinstance(n, str) else n for n in networks)

    def trusts(self, ip: Address) -> bool:
        return any(ip in net for net in self.networks)

    def client(self, peer: str, forwarded: Sequence[str]) -> str:
        """The rate limit's key (`rate_key`) for a call from TCP peer `peer` carrying the
        `X-Forwarded-For` lines `forwarded` (in order): the peer's address unless the peer is
        trusted, and then the rightmost address that is not a trusted proxy's, else the
        peer's. Whether an address is a trusted proxy is decided on the whole address, never
        its key."""
        ip = _address(peer)
        if ip is None:  # not a TCP peer (no client): its text, as before
            return peer
        if not self.networks or not self.trusts(ip) or not forwarded:
            return rate_key(ip)
        # Only the last MAX_FORWARDED_ENTRIES entries are split off; the rest stays one piece,
        # never read (rsplit stops after that many commas from the right).
        entries = ",".join(forwarded).rsplit(",", MAX_FORWARDED_ENTRIES)
        for entry in reversed(entries[-MAX_FORWARDED_ENTRIES:]):
            hop = _address(entry)
            if hop is None:  # not an address: nothing right of it names the client
                return rate_key(ip)
            if not self.trusts(hop):
                return rate_key(hop)
        return rate_key(ip)  # every entry read is a trusted proxy
