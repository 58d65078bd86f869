"""A host-name lookup for an app's HTTP request has a time limit (`httpout.DNS_TIMEOUT_S`).

getaddrinfo has none, and a name's owner runs the DNS server that answers for it: an app whose
permit lists its author's domain could make each lookup hang for as long as the resolver
retries. What must hold: a lookup that hangs is refused at the limit (as a timeout naming the
name, not "did not resolve": the name may well exist), lookups queued behind hung ones are
refused at theirs too (never waiting for the hung ones), and lookups work again once the
resolver answers.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from host.bridges import httpout
from host.server.errors import Unavailable

LIMIT_S = 0.3


def test_a_hanging_lookup_is_refused_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo
    answer = threading.Event()
    threading.Timer(8.0, answer.set).start()  # however the test ends, the hung threads end

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".slow.test"):
            answer.wait()
            raise socket.gaierror("gave up")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(httpout.socket, "getaddrinfo", hanging)
    monkeypatch.setattr(httpout, "DNS_TIMEOUT_S", LIMIT_S, raising=False)
    resolve = httpout.system_resolver()
    try:
        for i in range(getattr(httpout, "DNS_THREADS", 4) + 2):  # more than the lookup threads
            t0 = time.monotonic()
            # the first two wait out the limit; later ones meet this caller's share taken
            why = rf"'n{i}\.slow\.test' got no answer" if i < httpout.DNS_PER_CALLER \
                else "already has 2 host-name lookups waiting"
            with pytest.raises(Unavailable, match=why):
                resolve(f"n{i}.slow.test")
            took = time.monotonic() - t0
            assert took < LIMIT_S + 1.0, f"lookup {i} took {took:.1f} s"
    finally:
        answer.set()
    deadline = time.monotonic() + 5
    while True:  # the hung threads free up once the resolver answers
        try:
            if resolve("localhost"):
                break
        except Unavailable:
            pass
        assert time.monotonic() < deadline, "lookups never worked again"
        time.sleep(0.05)
    assert "127.0.0.1" in resolve("localhost")
