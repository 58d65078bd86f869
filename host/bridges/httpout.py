"""Outbound HTTP performed by the host for an app (the child has no network at all).

The gate has already decided the first URL with the addresses it resolved; this module then
connects only to those addresses (no second DNS lookup, so DNS rebinding cannot swap a public
address for a private one between check and connect), re-checks every redirect hop through
the same policy, and caps time, size and hops.

Clients are pooled: one `httpx.Client` per (install, scheme, host name), kept in `HttpOut`
and closed when the app stops. A client per request leaked (each left reference cycles and
sockets behind that the collector reached late: 86 -> 292 MiB in a 300 s run, issue 26).
"""
from __future__ import annotations

import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from host.errors import GateError

# Caps on what one app request may cost the host.
MAX_RESPONSE_BYTES = 1 << 20  # body kept and returned to the app
MAX_REQUEST_BODY = 1 << 20  # body the app may send
# The whole request, every redirect hop and every byte of every body included: a server
# that drips one byte every 2 s never trips a per-read timeout, and would hold the app's runner
# (so that app's later events) for as long as it liked.
TIMEOUT_S = 10.0
MAX_REDIRECTS = 3  # each hop is re-checked against the policy
MAX_HEADERS = 50
# Pooled clients: an install keeps at most this many host names' clients (the least recently
# used is closed), each with at most this many sockets; together they bound the descriptors
# one app's outbound HTTP can hold open.
MAX_CLIENTS_PER_INSTALL = 8
# A kept-alive connection sends a POST's headers and body in two writes; with Nagle's
# algorithm the second waits for the server's delayed ACK (~40 ms a call). One call at a time
# per runner, so nothing is gained by coalescing.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30.0)
# Headers an app may not set: they would let it steer the connection or smuggle requests.
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                                "upgrade", "proxy-authorization", "te", "trailer"})


def system_resolver(overrides: Mapping[str, str] | None = None) -> Callable[[str], list[str]]:
    """Resolve a host name to addresses; `overrides` pins names (the demo's CRM endpoint)."""
    pinned = {k.lower(): v for k, v in (overrides or {}).items()}

    def resolve(host: str) -> list[str]:
        if host.lower() in pinned:
            return [pinned[host.lower()]]
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return sorted({str(info[4][0]) for info in infos})

    return resolve


class HttpOut:
    """The host's outbound HTTP: pooled clients per install, closed when the app stops.

    A client is keyed by (install, scheme, host name), not only by install: the URL is pinned
    to the address the gate checked, so the pool's own key is that address, and a TLS connection
    verified for one name must not carry a request for another name at the same address."""

    def __init__(self, deadline_s: float = TIMEOUT_S) -> None:
        self.deadline_s = deadline_s
        self._lock = threading.Lock()
        self._clients: dict[str, OrderedDict[tuple[str, str], httpx.Client]] = {}
        self.created = 0  # clients built so far (the bench and tests read it)

    def client(self, install_id: str, url: str) -> httpx.Client:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), (parts.hostname or "").lower())
        evicted: httpx.Client | None = None
        with self._lock:
            pool = self._clients.setdefault(install_id, OrderedDict())
            client = pool.get(key)
            if client is not None:
                pool.move_to_end(key)
                return client
            client = httpx.Client(timeout=self.deadline_s, follow_redirects=False,
                                  trust_env=False, transport=httpx.HTTPTransport(
                                      limits=LIMITS, socket_options=_SOCKET_OPTIONS))
            self.created += 1
            pool[key] = client
            if len(pool) > MAX_CLIENTS_PER_INSTALL:
                _key, evicted = pool.popitem(last=False)
        if evicted is not None:
            evicted.close()
        return client

    def open_clients(self) -> int:
        with self._lock:
            return sum(len(pool) for pool in self._clients.values())

    def close_install(self, install_id: str) -> None:
        with self._lock:
            pool = self._clients.pop(install_id, None)
        for client in (pool or {}).values():
            client.close()

    def close(self) -> None:
        with self._lock:
            ids = list(self._clients)
        for install_id in ids:
            self.close_install(install_id)

    def perform(self, install_id: str, args: Mapping[str, Any],
                check_hop: Callable[[str], list[str]]) -> dict[str, Any]:
        return perform(args, check_hop, lambda url: self.client(install_id, url),
                       self.deadline_s)


def perform(
    args: Mapping[str, Any],
    check_hop: Callable[[str], list[str]],
    client_for: Callable[[str], httpx.Client] | None = None,
    deadline_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """Run the request. `check_hop(url)` returns the allowed addresses for a redirect hop or
    raises GateError (the gate audits it); the first hop was checked by the gate already and is
    checked again here to obtain its addresses. `client_for(url)` gives the pooled client
    (`HttpOut`); without it a one-off client is used and closed. The whole request, redirects
    included, ends by `deadline_s`."""
    method = str(args["method"]).upper()
    url = str(args["url"])
    headers = dict(args.get("headers") or {})
    body = args.get("body")
    if len(headers) > MAX_HEADERS:
        raise GateError("invalid_argument", f"more than {MAX_HEADERS} headers")
    for name, value in headers.items():
        if not isinstance(value, str) or name.lower() in _FORBIDDEN_HEADERS or any(
                c in name + value for c in "\r\n\0"):
            raise GateError("invalid_argument", f"header {name[:40]!r} is not allowed")
    data = body.encode() if isinstance(body, str) else None
    if data is not None and len(data) > MAX_REQUEST_BODY:
        raise GateError("invalid_argument", f"request body over {MAX_REQUEST_BODY} bytes")
    deadline = time.monotonic() + deadline_s
    for _hop in range(MAX_REDIRECTS + 1):
        ips = check_hop(url)
        if not ips:
            raise GateError("invalid_argument", "the host name did not resolve")
        if client_for is None:
            with httpx.Client(follow_redirects=False, trust_env=False) as one_off:
                response = _send_pinned(one_off, method, url, ips[0], headers, data,
                                        deadline, deadline_s)
        else:
            response = _send_pinned(client_for(url), method, url, ips[0], headers, data,
                                    deadline, deadline_s)
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            if response.status_code == 303:
                method, data = "GET", None
            continue
        return response_dict(response)
    raise GateError("invalid_argument", f"more than {MAX_REDIRECTS} redirects")


def _remaining(deadline: float, limit_s: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise GateError("invalid_argument",
                        f"HTTP request exceeded its {limit_s:g} s total deadline")
    return left


def _send_pinned(client: httpx.Client, method: str, url: str, ip: str,
                 headers: dict[str, str], data: bytes | None,
                 deadline: float, limit_s: float) -> httpx.Response:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc_ip = f"[{ip}]" if ":" in ip else ip
    if parts.port:
        netloc_ip += f":{parts.port}"
    pinned = parts._replace(netloc=netloc_ip).geturl()
    hdrs = dict(headers)
    hdrs["Host"] = parts.netloc
    try:
        # Every wait (pool, connect, write, each read) gets only what is left of the deadline.
        # httpcore reads the request's timeout dict at each receive, so shrinking it between
        # chunks bounds a read that starts late too; the check per chunk cuts a drip.
        timeouts = httpx.Timeout(_remaining(deadline, limit_s)).as_dict()
        with client.stream(method, pinned, headers=hdrs, content=data,
                           extensions={"sni_hostname": host, "timeout": timeouts}) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                left = _remaining(deadline, limit_s)
                for name in timeouts:
                    timeouts[name] = left
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise GateError("invalid_argument",
                                    f"response larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            response._content = b"".join(chunks)
            return response
    except httpx.TimeoutException:
        raise GateError("invalid_argument",
                        f"HTTP request exceeded its {limit_s:g} s total deadline") from None
    except httpx.HTTPError as exc:
        raise GateError("invalid_argument", f"HTTP request failed: {type(exc).__name__}") from None


def response_dict(response: httpx.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "headers": {k: v[:1024] for k, v in list(response.headers.items())[:MAX_HEADERS]},
        "body": response.content.decode("utf-8", "replace"),
    }
