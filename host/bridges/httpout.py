"""Outbound HTTP performed by the host for an app (the child has no network at all).

The gate has already decided the first URL with the addresses it resolved; this module then
connects only to those addresses (no second DNS lookup, so DNS rebinding cannot swap a public
address for a private one between check and connect), re-checks every redirect hop through
the same policy, and caps time, size and hops.

Clients are pooled: one `httpcore.ConnectionPool` per (install, scheme, host name), kept in
`HttpOut` and closed when the app stops. A client per request leaked (each left reference cycles
and sockets behind that the collector reached late: 86 -> 292 MiB in a 300 s run, issue 26).

It speaks through httpcore, the connection layer under httpx, rather than `httpx.Client`: the
same connections, TLS (verified against the URL's host name, sent as SNI), keep-alive and
timeouts, without httpx's request and response models, which cost ~0.35 ms of the host's CPU a
request here (docs/BENCH.md, "Outbound HTTP through httpcore"). What httpx added by itself is
done here: `Host`, `Content-Length`, `Accept-Encoding: identity` (the body comes back as sent,
never compressed: nothing to decode, nothing to inflate past the cap) and a `User-Agent`.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpcore

from host.errors import GateError
from host.server.errors import Unavailable

# What a request may carry (method, headers, body, and their caps) is one copy the author
# harness applies too: `policies.httprules`.
from policies.httprules import (
    MAX_RESPONSE_BYTES,
    RequestRefused,
    app_headers,
    checked_request,
)

# Caps on what one app request may cost the host.
# The whole request, every redirect hop and every byte of every body included: a server
# that drips one byte every 2 s never trips a per-read timeout, and would hold the app's runner
# (so that app's later events) for as long as it liked.
TIMEOUT_S = 10.0
MAX_REDIRECTS = 3  # each hop is re-checked against the policy
# Addresses of one host name tried in turn when a connection is refused or has no route (each
# one decided by the gate). Guards the deadline's use: a name listing many dead addresses is
# not tried address by address until the deadline.
MAX_ADDRESSES_TRIED = 4
# Bytes one hop may read off the socket before its final response head is complete, and after
# it, and body chunks it may take. Guard the host's CPU (the gate's interpreter, shared by every
# app): h11 parses interim 1xx answers one after another with no limit, and a body in 1-byte
# chunks (or chunks with long extensions) is one parse per chunk, so a server flooding either
# kept the host parsing at full CPU until the total deadline, 10 s for one unit, where a
# 1 MiB body in a few chunks costs milliseconds. h11 caps one head at 100 KiB; a body's wire
# bytes are the body plus its chunk framing.
MAX_HEAD_WIRE = 256 * 1024
MAX_BODY_WIRE = MAX_RESPONSE_BYTES + 256 * 1024
MAX_BODY_CHUNKS = 16384
# Pooled clients: an install keeps at most this many host names' clients (the least recently
# used is closed), each with at most this many sockets; together they bound the descriptors
# one app's outbound HTTP can hold open.
MAX_CLIENTS_PER_INSTALL = 8
# A kept-alive connection sends a POST's headers and body in two writes; with Nagle's
# algorithm the second waits for the server's delayed ACK (~40 ms a call). One call at a time
# per runner, so nothing is gained by coalescing.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
# Sockets one pooled client may hold open, and how long an idle one is kept.
MAX_CONNECTIONS, MAX_KEEPALIVE, KEEPALIVE_EXPIRY_S = 4, 2, 30.0
# The only headers of the app's a redirect carries to another origin than the one the app
# named (scheme, host, port). Guards the app's secrets: an API key may travel in any header
# (`X-Api-Key`, `Private-Token`, a vendor's own), not only Authorization and Cookie, and the
# host cannot tell which ones are credentials, so another origin — allowed by the policy or not,
# reached through an open redirect — gets only these, which describe the request, never who
# makes it. An app that needs its credentials there calls the new URL itself.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "content-language",
                                   "content-type"})
USER_AGENT = "stockade-host"
# Characters kept as they are in the request target; anything else is percent-encoded (a space,
# a quote, a non-ASCII letter), as httpx did, so a request line can never carry a raw one.
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"
# A redirect's target longer than this is refused rather than followed (or cut).
MAX_LOCATION = 8192
_HTTP_FAILURES = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
                  httpcore.ProxyError)
_REDIRECTS = (301, 302, 303, 307, 308)


# How long one host-name lookup may take before the call is refused as not resolving: a
# security boundary. getaddrinfo has no timeout of its own (glibc's resolver retries each name
# server, tens of seconds), and the name's owner runs the server that answers: an app whose
# permit lists a domain its author controls could make every lookup hang. A lookup runs on one
# of DNS_THREADS threads and is waited for at most this long; one still hanging keeps its thread
# until the resolver gives up, so at most DNS_THREADS are ever held, and lookups queued behind
# them are refused at their own timeout rather than waiting without bound.
DNS_TIMEOUT_S = 5.0
DNS_THREADS = 8
# Unfinished lookups one calling thread may have at once (a hung one counts until the resolver
# gives up); past it a lookup is refused at once as not resolving. Guards the other apps: the
# lookup threads are shared by every app, the gate looks a name up on the thread serving the
# app's call (its runner's), and an app answered by its author's hanging DNS server held all
# of them with a lookup every DNS_TIMEOUT_S, so every other app's lookups queued and were
# refused. One app now holds at most this many of the DNS_THREADS.
DNS_PER_CALLER = 2
_dns_pool: list[ThreadPoolExecutor] = []
_dns_pool_lock = threading.Lock()
_unfinished: weakref.WeakKeyDictionary[threading.Thread, int] = weakref.WeakKeyDictionary()


def _claim(caller: threading.Thread) -> bool:
    with _dns_pool_lock:
        held = _unfinished.get(caller, 0)
        if held >= DNS_PER_CALLER:
            return False
        _unfinished[caller] = held + 1
        return True


def _release(caller: threading.Thread) -> None:
    with _dns_pool_lock:
        held = _unfinished.get(caller, 0) - 1
        if held > 0:
            _unfinished[caller] = held
        else:
            _unfinished.pop(caller, None)


def _lookup_pool() -> ThreadPoolExecutor:
    with _dns_pool_lock:
        if not _dns_pool:
            _dns_pool.append(ThreadPoolExecutor(DNS_THREADS, thread_name_prefix="stockade-dns"))
        return _dns_pool[0]


def _addresses(host: str, caller: threading.Thread) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    finally:
        _release(caller)
    return sorted({str(info[4][0]) for info in infos})


def system_resolver(overrides: Mapping[str, str] | None = None) -> Callable[[str], list[str]]:
    """Resolve a host name to addresses (none: the name has no address); `overrides` pins names
    (the demo's CRM endpoint). A lookup with no answer within DNS_TIMEOUT_S, or one past the
    caller's DNS_PER_CALLER share, raises `Unavailable` (the app sees a timeout saying which),
    not "did not resolve": the name may well exist."""
    pinned = {k.lower(): v for k, v in (overrides or {}).items()}

    def resolve(host: str) -> list[str]:
        if host.lower() in pinned:
            return [pinned[host.lower()]]
        # A redirect hop's lookup (the gate's, on the thread running `perform`) is part of the
        # request: it gets no more than what is left of the request's total deadline.
        wait = DNS_TIMEOUT_S
        end: float | None = getattr(_deadline, "request_at", None)
        if end is not None:
            wait = min(wait, end - time.monotonic())
            if wait <= 0:
                return []
        caller = threading.current_thread()
        if not _claim(caller):
            # this caller's earlier lookups still hang: it may not hold more threads
            raise Unavailable(f"this app already has {DNS_PER_CALLER} host-name lookups "
                              "waiting for their DNS servers; try again once they end (each "
                              f"within {DNS_TIMEOUT_S:g} s)")
        lookup = _lookup_pool().submit(_addresses, host, caller)
        try:
            return lookup.result(timeout=wait)
        except FuturesTimeout:
            if lookup.cancel():  # still queued behind hung lookups: never run it
                _release(caller)
            if end is not None and time.monotonic() >= end:
                return []  # the request's own deadline: `perform` says it ran out
            raise Unavailable(f"the lookup of {host[:100]!r} got no answer from its DNS "
                              f"server within {DNS_TIMEOUT_S:g} s") from None

    return resolve


# The deadline of the request this thread is sending (`_send_pinned`, `at`): every wait on the
# network gets only what is left of it. httpcore reads its timeout dict once for the whole
# header block, so a server dripping header bytes would otherwise never trip it. `request_at`
# is the same deadline for the whole of `perform`, which the redirect hops' lookups also honour
# (`system_resolver`): the owner of a listed name answers its lookups as slowly as it likes.
_deadline = threading.local()


def _capped(timeout: float | None,
            late: type[httpcore.TimeoutException] = httpcore.ReadTimeout) -> float | None:
    end: float | None = getattr(_deadline, "at", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise late("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


def _spend(size: int) -> None:
    """Count bytes read for the request this thread is sending against what its current phase
    may still read (`_deadline.wire`: MAX_HEAD_WIRE, then MAX_BODY_WIRE)."""
    left: int | None = getattr(_deadline, "wire", None)
    if left is None:
        return
    _deadline.wire = left - size
    if left - size < 0:
        raise _over_wire_caps()


def _over_wire_caps() -> GateError:
    return GateError("invalid_argument", "the response sent more than its caps allow (heads "
                     f"and interim answers over {MAX_HEAD_WIRE} bytes, or a body over "
                     f"{MAX_BODY_WIRE} bytes or {MAX_BODY_CHUNKS} chunks on the wire)")


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, _capped(timeout))
        _spend(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(
            ssl_context, server_hostname, _capped(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, each wrapped in `_DeadlineStream`."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port,
                                                       _capped(timeout, httpcore.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None,
                            ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("no Unix sockets for an app's request")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_BACKEND = _DeadlineBackend()


class HttpOut:
    """The host's outbound HTTP: pooled clients per install, closed when the app stops.

    A client is keyed by (install, scheme, host name), not only by install: the URL is pinned
    to the address the gate checked, so the pool's own key is that address, and a TLS connection
    verified for one name must not carry a request for another name at the same address."""

    def __init__(self, deadline_s: float = TIMEOUT_S) -> None:
        self.deadline_s = deadline_s
        self._lock = threading.Lock()
        self._clients: dict[str, OrderedDict[tuple[str, str], httpcore.ConnectionPool]] = {}
        self.created = 0  # clients built so far (the bench and tests read it)

    def client(self, install_id: str, url: str) -> httpcore.ConnectionPool:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), (parts.hostname or "").lower())
        evicted: httpcore.ConnectionPool | None = None
        with self._lock:
            pool = self._clients.setdefault(install_id, OrderedDict())
            client = pool.get(key)
            if client is not None:
                pool.move_to_end(key)
                return client
            # Certificates are verified (httpcore's default context: certifi's roots).
            client = httpcore.ConnectionPool(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE,
                keepalive_expiry=KEEPALIVE_EXPIRY_S, socket_options=_SOCKET_OPTIONS,
                network_backend=_BACKEND)
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
                check_hop: Callable[[str], list[str]],
                hop_done: Callable[[bool, BaseException | None], None] | None = None,
                ) -> dict[str, Any]:
        return perform(args, check_hop, lambda url: self.client(install_id, url),
                       self.deadline_s, hop_done)


def perform(
    args: Mapping[str, Any],
    check_hop: Callable[[str], list[str]],
    client_for: Callable[[str], httpcore.ConnectionPool] | None = None,
    deadline_s: float = TIMEOUT_S,
    hop_done: Callable[[bool, BaseException | None], None] | None = None,
) -> dict[str, Any]:
    """Run the request. `check_hop(url)` returns the allowed addresses for a redirect hop or
    raises GateError (the gate audits it, and charges the hop before it is sent); the first hop
    was checked by the gate already and is checked again here to obtain its addresses.
    `hop_done(sent, error)` is told how each hop `check_hop` passed ended: whether any of it
    went out, and its error (None: answered), so the gate can record each hop's outcome and
    give back the unit of one that never went out. `client_for(url)` gives the pooled client
    (`HttpOut`); without it a one-off client is used and closed. The whole request, redirects
    included, ends by `deadline_s`."""
    try:
        method, headers, data = checked_request(args["method"], args.get("headers"),
                                                args.get("body"))
    except RequestRefused as exc:
        raise GateError("invalid_argument", str(exc)) from None
    url = str(args["url"])
    deadline = time.monotonic() + deadline_s
    went_out = False  # a hop's request went out: what fails after it keeps its unit
    _deadline.request_at = deadline  # a redirect hop's lookup ends by it (`system_resolver`)
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            ips = check_hop(url)
            try:
                _remaining(deadline, deadline_s)  # a lookup cut by the deadline: no "no address"
                if not ips:
                    raise GateError("invalid_argument", "the host name did not resolve")
                status, got, content, location = _send_to_one(
                    client_for, method, url, ips, headers, data, deadline, deadline_s)
            except Exception as exc:
                if hop_done is not None:
                    # this hop's own `sent`, before the chain's is laid over it below
                    hop_done(exc.sent if isinstance(exc, GateError) else True, exc)
                raise
            went_out = True
            if hop_done is not None:
                hop_done(True, None)
            if status in _REDIRECTS and location is not None:
                if len(location) > MAX_LOCATION:
                    raise GateError("invalid_argument",
                                    f"a redirect's location is over {MAX_LOCATION} characters")
                url, previous = urljoin(url, location), url
                if _origin(url) != _origin(previous):
                    # The app's credentials were meant for the origin it named: another one
                    # gets only headers that cannot be one (`_CROSS_ORIGIN_HEADERS`).
                    headers = {k: v for k, v in headers.items()
                               if k.lower() in _CROSS_ORIGIN_HEADERS}
                if status == 303 or (status in (301, 302) and method == "POST"):
                    # Browsers and httpx answer these with a GET of the new place: the body
                    # was meant for the first URL, not for wherever it points next.
                    method, data = "GET", None
                continue
            return {"status": status, "headers": got,
                    "body": content.decode("utf-8", "replace")}
        raise GateError("invalid_argument", f"more than {MAX_REDIRECTS} redirects")
    except GateError as exc:
        exc.sent = exc.sent or went_out
        raise
    except ValueError as exc:
        # A URL the standard library cannot take apart (a redirect's location such as
        # `http://[x/`, a port out of range). After a hop went out, the gate must keep the
        # unit: a plain ValueError is refunded as bad input refused before anything was sent.
        raise _failed(f"HTTP request failed: {str(exc)[:200]}", went_out) from None
    finally:
        _deadline.request_at = None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _remaining(deadline: float, limit_s: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise GateError("invalid_argument",
                        f"HTTP request exceeded its {limit_s:g} s total deadline")
    return left


class _Unreachable(GateError):
    """No connection could be made to one address (refused, no route): nothing was sent."""


def _send_to_one(client_for: Callable[[str], httpcore.ConnectionPool] | None, method: str,
                 url: str, ips: list[str], headers: dict[str, str], data: bytes | None,
                 deadline: float, limit_s: float) -> tuple[int, dict[str, str], bytes, str | None]:
    """`_send_pinned` to the first of `ips` (each one the gate decided) that takes the
    connection, at most `MAX_ADDRESSES_TRIED` of them: a name with IPv4 and IPv6 addresses
    failed on a machine without an IPv6 route whenever an IPv6 address came first."""
    last: _Unreachable | None = None
    for ip in ips[:MAX_ADDRESSES_TRIED]:
        try:
            if client_for is None:
                with httpcore.ConnectionPool(socket_options=_SOCKET_OPTIONS,
                                             network_backend=_BACKEND) as one_off:
                    return _send_pinned(one_off, method, url, ip, headers, data, deadline,
                                        limit_s)
            return _send_pinned(client_for(url), method, url, ip, headers, data, deadline,
                                limit_s)
        except _Unreachable as exc:
            last = exc
    assert last is not None  # `ips` is never empty here
    raise last


def _send_pinned(client: httpcore.ConnectionPool, method: str, url: str, ip: str,
                 headers: dict[str, str], data: bytes | None, deadline: float,
                 limit_s: float) -> tuple[int, dict[str, str], bytes, str | None]:
    """One request to `ip` for `url`'s host (its name in `Host` and as the TLS server name).
    Returns (status, headers as the app sees them, body, the first `Location` whole: the
    app's copy of the headers is capped, a redirect must not follow a cut one)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    pinned = httpcore.URL(scheme=scheme, host=ip, target=target,
                          port=parts.port or (443 if scheme == "https" else 80))
    hdrs = [("Host", parts.netloc.rpartition("@")[2]), ("Accept-Encoding", "identity")]
    if not any(k.lower() == "user-agent" for k in headers):
        hdrs.append(("User-Agent", USER_AGENT))
    hdrs.extend(headers.items())
    if data is not None:
        hdrs.append(("Content-Length", str(len(data))))
    _deadline.at = deadline  # every socket wait of this request ends by it (`_capped`)
    _deadline.wire = MAX_HEAD_WIRE  # what it may read before its head is complete (`_spend`)
    began: list[str] = []  # the request's first byte was handed to the socket

    def trace(event: str, _info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            began.append(event)
    try:
        # Every wait (pool, connect, write, each read) gets only what is left of the deadline.
        # httpcore reads the request's timeout dict at each receive, so shrinking it between
        # chunks bounds a read that starts late too; the check per chunk cuts a drip.
        left = _remaining(deadline, limit_s)
        timeouts = {"connect": left, "read": left, "write": left, "pool": left}
        with client.stream(method, pinned, headers=hdrs, content=data,
                           extensions={"sni_hostname": parts.hostname or "",
                                       "timeout": timeouts, "trace": trace}) as response:
            _deadline.wire = MAX_BODY_WIRE  # the head is in: now the body's budget
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_stream():
                left = _remaining(deadline, limit_s)
                for name in timeouts:
                    timeouts[name] = left
                size += len(chunk)
                if len(chunks) >= MAX_BODY_CHUNKS:
                    raise _over_wire_caps()
                if size > MAX_RESPONSE_BYTES:
                    raise GateError("invalid_argument",
                                    f"response larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            location = next((v.decode("latin-1") for k, v in response.headers
                             if k.lower() == b"location"), None)
            return (response.status, _response_headers(response.headers), b"".join(chunks),
                    location)
    except GateError as exc:
        exc.sent = bool(began)
        raise
    except httpcore.TimeoutException:
        raise _failed(f"HTTP request exceeded its {limit_s:g} s total deadline",
                      bool(began)) from None
    except httpcore.ConnectError:
        if began:
            raise _failed("HTTP request failed: ConnectError", True) from None
        raise _Unreachable("invalid_argument", "HTTP request failed: ConnectError") from None
    except _HTTP_FAILURES as exc:
        raise _failed(f"HTTP request failed: {type(exc).__name__}", bool(began)) from None
    finally:
        _deadline.at = None
        _deadline.wire = None


def _failed(message: str, sent: bool) -> GateError:
    """The app's `invalid_argument`; once any of the request was sent (`sent`), its unit is
    kept (`GateError.sent`): the server may have acted on it, as on any request that went out."""
    error = GateError("invalid_argument", message)
    error.sent = sent
    return error


def _response_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The response's headers as the app sees them (`policies.httprules.app_headers`, which
    the author harness applies to its responder's headers too)."""
    return app_headers((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)
