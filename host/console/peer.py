"""Which local account holds the client end of a console connection (Linux, loopback).

What it guards: a console session used by another local user. Browsers do not separate cookies
by port, and SameSite counts every port of 127.0.0.1 as one site, so a page the operator's
browser opens on another loopback port (a server another local user runs) receives the
console's session cookie; replayed from that user's own process, with any Origin header it
likes, it would act as the operator. The console therefore binds each session to the OS user
that signed it in, read here, and refuses it from any other (`host.console.signin`).

The console listens on loopback only, so the client's socket is in this network namespace's
TCP table (`/proc/self/net/tcp`, `tcp6`: the namespace of the process that reads it, which is
the process serving the console, the front or the host): the entry whose local address is the
request's client and whose remote address is the console's own holds the uid that owns it. A
TLS reverse proxy on the same machine is then the client: its uid is what a session is bound
to (docs/CONSOLE.md).

The address must be the TCP peer itself: uvicorn rewrites the request's client from an
`X-Forwarded-For` header (port included) sent from a trusted address, and loopback is trusted
by default, so any local user could name the operator's own connection. Every listener of the
product therefore trusts no forwarding header (`host.server.listen.http_config`).

Not cached: a cache by address would outlive the connection (once the operator's connection
closes, another user may bind that client port and connect from it), and a request says
nothing else about its connection. The lookup is made only for a request that carries a live
session (and at a sign-in whose password was right): one read of the table and a substring
search in it (about 2 ms with 400 sockets here, the kernel's formatting of the table most
of it).
"""
from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

# The kernel's TCP tables of this process's network namespace (IPv4, IPv6 with mapped IPv4).
TABLES = (Path("/proc/self/net/tcp"), Path("/proc/self/net/tcp6"))
# States whose entry is a live socket with its owner: established, FIN_WAIT1/2 (the client
# half-closed after sending), CLOSE_WAIT. Guards: a TIME_WAIT entry, which the kernel lists
# with uid 0 and no owner, ever standing for a client.
LIVE_STATES = frozenset({"01", "04", "05", "08"})
def _words(packed: bytes) -> str:
    """An address as the kernel's table prints it: 32-bit words in this machine's order."""
    return "".join(f"{w:08X}" for w in struct.unpack(f"={len(packed) // 4}I", packed))


def _forms(host: str) -> list[tuple[Path, str]]:
    """Each (table, printed address) the address may appear as: an IPv4 address (or an IPv4
    address mapped in IPv6, as a dual-stack listener names its IPv4 peers) in both tables."""
    ip = ipaddress.ip_address(host.strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        mapped = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
        return [(TABLES[0], _words(ip.packed)), (TABLES[1], _words(mapped.packed))]
    return [(TABLES[1], _words(ip.packed))]


def client_uid(client: tuple[str, int] | None, server: tuple[str, int] | None) -> int | None:
    """The uid owning the socket at `client` connected to `server` (the console's own address),
    or None when no single owner is found (not a TCP client of this namespace, no /proc, or
    entries that disagree). None must be read as "unknown", never as any user."""
    if client is None or server is None:
        return None
    try:
        ours = dict(_forms(server[0]))
        theirs = _forms(client[0])
    except ValueError:
        return None
    uids: set[int] = set()
    for table, local in theirs:
        remote = ours.get(table)
        if remote is None:
            continue
        needle = f" {local}:{client[1]:04X} {remote}:{server[1]:04X} "
        try:
            text = table.read_text()
        except OSError:
            continue
        at = text.find(needle)
        while at >= 0:
            end = text.find("\n", at)
            # local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            fields = text[at:end if end >= 0 else len(text)].split()
            if len(fields) > 6 and fields[2] in LIVE_STATES and fields[6].isdigit():
                uids.add(int(fields[6]))
            at = text.find(needle, at + 1)
        if uids:
            break  # an address is in one table only: the other is not read
    return uids.pop() if len(uids) == 1 else None
