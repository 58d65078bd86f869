"""A whole-call deadline under httpx: every socket read, write and connect of the calling thread
waits at most until the call's deadline, whatever httpx's per-operation timeout says.

httpx's timeouts bound each socket operation, not the request: a workspace (or whatever sits
in front of it) that sends one byte of its answer every few seconds — of the status line, the
headers (h11 keeps up to 100 KiB of them) or the body — never trips a read timeout and held the
app's call, a pool connection and the host's thread for as long as it liked. `RcClient` sets
the deadline for its thread (`until`) around each call; this network backend, under the
client's pool, clamps each operation's timeout to what is left of it and raises httpcore's own
timeout (which httpx maps to its `TimeoutException`) once it has passed.

A security boundary (DESIGN rule 13: no app's call is held by a peer's pace), tested against a
real socket server that trickles its answer (tests/remote/test_remote_endless_answer.py).
"""
from __future__ import annotations

import contextlib
import ssl
import threading
import time
import typing
from collections.abc import Iterable, Iterator

import httpcore
import httpx

_local = threading.local()


@contextlib.contextmanager
def until(give_up: float) -> Iterator[None]:
    """Every socket operation of this thread inside the block ends by `give_up` (monotonic), or
    by an enclosing block's earlier one: a call inside a search that has its own deadline
    (`RemoteServer.users_find_by_field`) never runs past the search's."""
    before = getattr(_local, "give_up", None)
    _local.give_up = give_up if before is None else min(before, give_up)
    try:
        yield
    finally:
        _local.give_up = before


def _clamp(timeout: float | None, late: type[Exception]) -> float | None:
    give_up: float | None = getattr(_local, "give_up", None)
    if give_up is None:
        return timeout
    left = give_up - time.monotonic()
    if left <= 0:
        raise late("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname,
                                             _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, _clamp(timeout, httpcore.ConnectTimeout),
                                               local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                            ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(
            path, _clamp(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's own transport with this backend under its pool. httpx has no public hook for a
    network backend: the pool's is replaced, and the trickle test fails if a new httpx or
    httpcore stops honouring it."""
    out = httpx.HTTPTransport(limits=limits, trust_env=False)
    # Private on purpose (httpx has no public network-backend hook); checked just below.
    pool = out._pool
    if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore's pool takes no network backend: the workspace "
                           "client cannot bound a whole call")
    pool._network_backend = _Backend()
    return out
