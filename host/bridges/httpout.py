"""Outbound HTTP performed by the host for an app (the child has no network at all).

The gate has already decided the first URL with the addresses it resolved; this module then
connects only to those addresses (no second DNS lookup, so DNS rebinding cannot swap a public
address for a private one between check and connect), re-checks every redirect hop through
the same policy, and caps time, size and hops.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from host.errors import GateError

# Caps on what one app request may cost the host.
MAX_RESPONSE_BYTES = 1 << 20  # body kept and returned to the app
MAX_REQUEST_BODY = 1 << 20  # body the app may send
TIMEOUT_S = 10.0  # whole request, per hop
MAX_REDIRECTS = 3  # each hop is re-checked against the policy
MAX_HEADERS = 50
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


def perform(
    args: Mapping[str, Any],
    check_hop: Callable[[str], list[str]],
) -> dict[str, Any]:
    """Run the request. `check_hop(url)` returns the allowed addresses for a redirect hop or
    raises GateError (the gate audits it); the first hop was checked by the gate already and is
    checked again here to obtain its addresses."""
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
    with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            ips = check_hop(url)
            if not ips:
                raise GateError("invalid_argument", "the host name did not resolve")
            response = _send_pinned(client, method, url, ips[0], headers, data)
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                if response.status_code == 303:
                    method, data = "GET", None
                continue
            return response_dict(response)
    raise GateError("invalid_argument", f"more than {MAX_REDIRECTS} redirects")


def _send_pinned(client: httpx.Client, method: str, url: str, ip: str,
                 headers: dict[str, str], data: bytes | None) -> httpx.Response:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc_ip = f"[{ip}]" if ":" in ip else ip
    if parts.port:
        netloc_ip += f":{parts.port}"
    pinned = parts._replace(netloc=netloc_ip).geturl()
    hdrs = dict(headers)
    hdrs["Host"] = parts.netloc
    try:
        with client.stream(method, pinned, headers=hdrs, content=data,
                           extensions={"sni_hostname": host}) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise GateError("invalid_argument",
                                    f"response larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            response._content = b"".join(chunks)
            return response
    except httpx.HTTPError as exc:
        raise GateError("invalid_argument", f"HTTP request failed: {type(exc).__name__}") from None


def response_dict(response: httpx.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "headers": {k: v[:1024] for k, v in list(response.headers.items())[:MAX_HEADERS]},
        "body": response.content.decode("utf-8", "replace"),
    }
