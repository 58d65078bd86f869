"""The Host names the REST API answers: a security boundary against DNS rebinding.

A page of another site whose name its owner re-points at 127.0.0.1 after it loaded
(attacker.example, then a DNS answer of 127.0.0.1) reaches the loopback REST API as its own
origin: the browser sends its requests with `Host: attacker.example`, JSON bodies without a
preflight, and lets the page read every answer. Sign-in and the chat widget's routes need no
credential, so a browser that held nothing let such a page guess passwords against an account's
sign-in budget, register visitors and read what came back. The console has its own list
(`host.console.app`, `host.console.origins`); this is the REST API's.

What is answered:

- no Host header at all (HTTP/1.0): a browser always sends one, so there is nothing to rebind;
- `localhost`, and any IP address (`127.0.0.1`, `[::1]`, the bound address, or a machine's own
  address when a proxy passes it on): a page can rebind a name, never an address, so a Host that
  is an address is one the browser really connected to;
- the names the operator gives: what a reverse proxy passes on (`serve --rest-host NAME`) and
  the names of the console's origins (`serve --console-origin`), whose proxy serves the REST API
  under the same name.

Any port is accepted with a name (a rebinding page's port is the loopback port anyway; the name
is what it cannot fake). Anything else, a malformed Host included, is a 400 in the API's error
shape saying how to name a host, before the request is read further.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

# Answered besides every address: loopback's name, and its usual address (a set member, so the
# common Host is answered without parsing an address).
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
# One label of a DNS host name as it travels in a Host header (a browser sends an IDN in its
# xn-- form): letters, digits, '-' inside, '_' as some internal names use; 1-63 characters.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# The longest host name DNS carries (RFC 1035), without its trailing dot.
MAX_NAME = 253
# How much of a refused Host the answer repeats. Guards the answer's size: a header may be up to
# the head's cap (`host.server.listen.MAX_HEAD_BYTES`).
MAX_SHOWN = 100
HINT = ("name each public host a reverse proxy passes on with `stockade serve --rest-host NAME` "
        "(repeatable; the names of --console-origin count too), or reach the API by an address")


def parse_name(text: str) -> str:
    """An operator's host name as the allowlist keeps it (lowercase, no trailing dot); an IP
    address is kept as it is always answered. ValueError for anything else: a URL, a path, a
    port, a wildcard, characters no Host name holds."""
    name = text.strip().lower()
    if _address(name.strip("[]")) is not None:
        return name
    name = name[:-1] if name.endswith(".") else name
    if not _is_name(name):
        raise ValueError(f"{text!r} is not a host name like chat.example.com (no scheme, port, "
                         "path or wildcard; an internationalized name in its xn-- form)")
    return name


def _is_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME and name.isascii() \
        and all(_LABEL.fullmatch(label) for label in name.split("."))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class HostAllowlist:
    """Which Host header values the REST API answers (the module's rules)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        """`names`: host names besides loopback's (`parse_name` forms; parsed again here)."""
        self.names = frozenset((*LOOPBACK_NAMES, *(parse_name(n) for n in names)))

    def allows(self, host: str | None) -> bool:
        """Whether a request whose Host header is `host` (None: it sent none) is answered."""
        if host is None:
            return True
        if host.startswith("["):  # an IPv6 address, bracketed as in a URL
            end = host.find("]")
            name, port = host[1:end], host[end + 1:]
            if end < 0 or _address(name) is None or name.count(":") < 2:
                return False
        else:
            name, colon, digits = host.partition(":")
            port = colon + digits
            name = name.lower()
            if name in self.names:
                pass
            elif name.endswith(".") and name[:-1] in self.names:
                pass
            elif _address(name) is None or ":" in name:  # an IPv6 address needs its brackets
                return False
        return port == "" or (port[0] == ":" and port[1:].isascii() and port[1:].isdigit()
                              and len(port) <= 6)

    def refusal(self, host: str) -> dict[str, Any]:
        """The refusal's body, in the API's error shape (`host.server.rest_errors`)."""
        shown = host[:MAX_SHOWN] + ("..." if len(host) > MAX_SHOWN else "")
        kind = "error-invalid-host"
        return {"success": False, "errorType": kind,
                "error": f"this server does not answer the host name {shown!r}: {HINT} "
                         f"[{kind}]"}
