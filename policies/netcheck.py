"""Outbound HTTP: parse a URL without surprises, and tell public addresses from the rest.

The host resolves the name and hands the engine every address it will connect to
(facts["resolved_ips"]); the engine refuses unless each one is public or explicitly allowed.
The host must then connect only to those addresses (no second resolution: DNS rebinding).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from policies.names import HOST_RE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# URL length. Guards: parse cost and log size; no legitimate API URL is this long.
MAX_URL = 8192
# Characters never allowed anywhere in a URL we pass on. Guards: parser differentials
# ("http://evil.com\@good" is read differently by different libraries), header injection.
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# Last label all digits / hex: the name is an IP literal in some resolver's eyes ("2130706433",
# "0x7f.1", "127.1", "0177.0.0.1"). Guards: numeric host forms that dodge a dotted-quad check.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# A netloc with brackets: exactly one bracketed host at its start, then at most a port.
# Guards the Host header: Python's urlsplit takes the host from inside the brackets and drops
# whatever stands before them, so "http://admin.corp[v1.api.example.com]/" was decided as the
# listed v1.api.example.com while the server read `Host: admin.corp[v1.api.example.com]`.
_BRACKETED = re.compile(r"\[[^\[\]]+\](:[0-9]*)?")
# NAT64 well-known prefix: the low 32 bits are an IPv4 address the gateway will reach.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str  # canonical: lower case, no trailing dot, IPv6 without brackets
    ip: IPAddress | None  # set when the host is an IP literal
    port: int  # as written, else the scheme's own (80, 443)


def parse_url(url: str) -> ParsedUrl | str:
    """Parse an outbound URL; return a refusal reason (str) when anything is unusual."""
    if len(url) > MAX_URL:
        return "URL too long"
    if _BAD_URL_CHARS.search(url) or not url.isascii():
        return "URL contains spaces, control characters, backslashes or non-ASCII text"
    try:
        parts = urlsplit(url)
        written = parts.port  # raises on a bad port
    except ValueError as exc:
        return f"URL does not parse ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} is not http or https"
    port = written if written is not None else (443 if parts.scheme == "https" else 80)
    if port == 0:
        return "URL names port 0"
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        return "URL carries userinfo (user@host); refused because it confuses host checks"
    bracketed = "[" in parts.netloc or "]" in parts.netloc
    if bracketed and _BRACKETED.fullmatch(parts.netloc) is None:
        return "URL has text around its bracketed host"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "URL has no host"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if bracketed and not isinstance(ip, ipaddress.IPv6Address):
        # "[v1.x]" (RFC 3986's IPvFuture) holds a name the Host header sends in brackets
        return "URL's brackets hold something other than an IPv6 address"
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            return "IPv6 scope ids are refused"
        return ParsedUrl(parts.scheme, str(ip), ip, port)
    if HOST_RE.fullmatch(host) is None:
        return f"host {host!r} is not a plain DNS name"
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        return f"host {host!r} is a non-canonical numeric address"
    return ParsedUrl(parts.scheme, host, None, port)


# IANA's "IETF Protocol Assignments" block, not globally reachable but for 192.0.0.9 and
# 192.0.0.10 (RFC 8190's special-purpose registry). Guards what the block holds on a link:
# Python 3.11's `is_global` knows only 192.0.0.0/29 and 192.0.0.170/31 of it, so 192.0.0.192
# (a cloud instance metadata address in SSRF references) passed as public; the answer must not
# depend on the interpreter's version.
_V4_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
_V4_GLOBAL_ASSIGNMENTS = frozenset(map(ipaddress.IPv4Address, ("192.0.0.9", "192.0.0.10")))


def _v4_is_public(ip: ipaddress.IPv4Address) -> bool:
    if ip in _V4_PROTOCOL_ASSIGNMENTS and ip not in _V4_GLOBAL_ASSIGNMENTS:
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one carries to (IPv4-mapped, 6to4, Teredo, NAT64)."""
    embedded: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    if ip in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses, looking inside IPv6 embeddings
    (IPv4-mapped, 6to4, Teredo, NAT64) so a private IPv4 cannot hide in an IPv6 form."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_is_public(ip)
    embedded = embedded_ipv4(ip)
    if embedded:
        return all(_v4_is_public(v4) for v4 in embedded)
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_site_local
    )


def never_reachable(ip: IPAddress) -> bool:
    """Addresses no allow_private entry can lift: unspecified and multicast."""
    target: IPAddress = ip
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        target = ip.ipv4_mapped
    return target.is_unspecified or target.is_multicast


def parse_ip(text: str) -> IPAddress | None:
    """Strict IP parse (no scope ids, no numeric shorthands); None when not an IP."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return None
    return ip
