"""An app author's attempts to make the host's outbound HTTP (`host.bridges.httpout`) do more
than its one decided request, against real loopback servers:

- a header the wire cannot carry as given (a name that is no token, a control character in a
  value) is refused before any connection is made, so the unit is refunded (`GateError.sent`
  false) and the server behind the URL never sees a raw control byte;
- a redirect hop's host-name lookup, which the owner of a listed name answers as slowly as it
  likes, ends by the request's total deadline like every other wait of the request.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from httprig import OK, Loopback, http_policy, redirect_to

from host.bridges import httpout
from host.bridges.httpout import HttpOut
from host.errors import GateError
from host.server.errors import Unavailable


def _answering(answer: bytes) -> Loopback:
    """A loopback server that answers every request with `answer`."""
    return Loopback(lambda _head: answer)


@pytest.fixture()
def out() -> Iterator[HttpOut]:
    o = HttpOut(deadline_s=1.0)
    yield o
    o.close()


@pytest.mark.parametrize("headers", [
    {"X Api": "k"}, {"X-Api:": "k"}, {"X-Api\t": "k"}, {"": "k"},
    {"X-Api": "a\x01b"}, {"X-Api": "a\x7f"}, {"X-Api": "a\x0bb"}, {"X-Api": "a\x0cb"},
    # h11 refuses whitespace at a value's edges only after connecting (before: a connection
    # made and the unit kept for a request that never went out)
    {"X-Api": " k"}, {"X-Api": "k "}, {"X-Api": "k\t"}, {"X-Api": "\t"},
])
def test_a_header_the_wire_cannot_carry_is_refused_before_connecting(
        out: HttpOut, headers: dict[str, str]) -> None:
    server = _answering(OK)
    try:
        with pytest.raises(GateError) as refused:
            out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/",
                               "headers": headers}, lambda _url: ["127.0.0.1"])
        assert refused.value.code == "invalid_argument"
        # nothing went out: the gate refunds the unit (before: kept, or the byte was sent)
        assert not refused.value.sent
        time.sleep(0.1)
        assert server.connections == 0 and server.heads == []
    finally:
        server.close()


def test_a_tab_in_a_header_value_still_goes_out(out: HttpOut) -> None:
    server = _answering(OK)
    try:
        got = out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/",
                                 "headers": {"X-Api": "a\tb"}}, lambda _url: ["127.0.0.1"])
        assert got["status"] == 200 and b"\r\nX-Api: a\tb\r\n" in server.heads[0]
    finally:
        server.close()


def test_a_redirect_hops_lookup_ends_by_the_total_deadline(
        out: HttpOut, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first hop answers at once with a redirect to a name whose lookup hangs (its owner's
    DNS server); the request must end by its 1 s deadline, not at the lookup's own 5 s limit."""
    real = socket.getaddrinfo
    answer = threading.Event()

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".slow.test"):
            answer.wait(4.0)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(httpout.socket, "getaddrinfo", hanging)
    resolve = httpout.system_resolver()
    server = _answering(redirect_to("http://a.slow.test/"))
    hops: list[str] = []

    def check_hop(url: str) -> list[str]:
        # as the gate does: the first hop's addresses were decided, a redirect's are looked up
        hops.append(url)
        return ["127.0.0.1"] if len(hops) == 1 else resolve(urlsplit(url).hostname or "")

    try:
        began = time.monotonic()
        with pytest.raises(GateError) as refused:
            out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/"},
                        check_hop)
        took = time.monotonic() - began
        assert took < 1.8, f"the request took {took:.1f} s against its 1 s deadline"
        assert "deadline" in refused.value.message and refused.value.sent
        assert hops[-1] == "http://a.slow.test/"
    finally:
        answer.set()
        server.close()


def test_one_apps_hanging_lookups_leave_the_others_lookups_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An app whose listed names its author's DNS server never answers asks for one name after
    another on its own runner thread (as the gate resolves, on the thread serving the call);
    each is refused at the limit and keeps hanging. Another app's lookup must still be answered,
    not queued behind them on the shared lookup threads."""
    limit = 0.3
    real = socket.getaddrinfo
    answer = threading.Event()

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".evil.test"):
            answer.wait(20.0)
            raise socket.gaierror("gave up")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(httpout.socket, "getaddrinfo", hanging)
    monkeypatch.setattr(httpout, "DNS_TIMEOUT_S", limit)
    resolve = httpout.system_resolver()

    said: list[str] = []

    def evil_app() -> None:
        for i in range(12):  # more than the lookup threads
            try:
                resolve(f"n{i}.evil.test")
            except Unavailable as exc:
                said.append(str(exc))

    try:
        runner = threading.Thread(target=evil_app, name="app-evil")
        runner.start()
        runner.join(30)
        began = time.monotonic()
        got = resolve("localhost")  # the other app's runner (this thread)
        took = time.monotonic() - began
        assert "127.0.0.1" in got, f"the other app's lookup was refused after {took:.1f} s"
        assert took < limit
        # each refusal says why: its own lookup's silence, or the app's share of lookups taken
        assert len(said) == 12
        assert any("got no answer" in m for m in said)
        assert any(f"already has {httpout.DNS_PER_CALLER} host-name lookups" in m
                   for m in said)
    finally:
        answer.set()


class Flood:
    """A loopback server that answers the first request with `head`, then `blob` as fast as
    the client reads, `times` times (forever when None), then `tail`."""

    def __init__(self, head: bytes, blob: bytes, times: int | None, tail: bytes = b"") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.args = head, blob, times, tail
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        head, blob, times, tail = self.args
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(head)
                sent = 0
                while times is None or sent < times:
                    conn.sendall(blob)
                    sent += 1
                conn.sendall(tail)
                conn.recv(1)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("head,blob", [
    # interim answers, which h11 parses one after another with no limit of its own
    (b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 4000),
    # a body in 1-byte chunks: one parse per chunk, for a body under the size cap
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\nx\r\n" * 4000),
    # chunks with long extensions: wire bytes the size cap of the body never counts
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"1;" + b"e" * 60000 + b"\r\nx\r\n"),
])
def test_a_flood_the_body_cap_does_not_count_is_cut_long_before_the_deadline(
        head: bytes, blob: bytes) -> None:
    """The host's CPU is shared by every app's gate: before, each of these kept it parsing at
    full speed until the request's total deadline (10 s in production) for one quota unit."""
    server = Flood(head, blob, None)
    # A deadline far past the bound below: only a request cut at its deadline (before) can take
    # that long, while a loaded machine's slow cut by the caps stays well inside it (a 3 s
    # deadline and a 1.5 s bound failed 2 of 5 runs at load ~7).
    out = HttpOut(deadline_s=30.0)
    try:
        began, cpu = time.monotonic(), time.process_time()
        with pytest.raises(GateError) as refused:
            out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/"},
                        lambda _url: ["127.0.0.1"])
        took, spent = time.monotonic() - began, time.process_time() - cpu
        assert "caps" in refused.value.message, refused.value.message
        assert refused.value.sent  # it went out: the unit is kept
        assert took < 10 and spent < 10, f"{took:.1f} s, {spent:.1f} s of CPU"
    finally:
        out.close()
        server.close()


def test_a_big_answer_in_ordinary_chunks_after_interim_answers_still_comes_back() -> None:
    chunk = b"x" * 1024
    server = Flood(b"HTTP/1.1 100 Continue\r\n\r\n" * 20 + b"HTTP/1.1 200 OK\r\n"
                   + b"X-Pad: " + b"p" * 60000 + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
                   b"400\r\n" + chunk + b"\r\n", 1000, b"0\r\n\r\n")
    out = HttpOut(deadline_s=5.0)
    try:
        got = out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/"},
                          lambda _url: ["127.0.0.1"])
        assert got["status"] == 200 and len(got["body"]) == 1000 * 1024
    finally:
        out.close()
        server.close()


def test_an_address_that_refuses_the_connection_is_passed_for_the_next(out: HttpOut) -> None:
    """A name's addresses (each decided by the gate) are tried in turn while a connection is
    refused or has no route: a name with an IPv6 address first failed on a machine without an
    IPv6 route. Here 127.0.0.2 refuses (nothing listens there) and 127.0.0.1 answers."""
    server = _answering(OK)
    try:
        got = out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/"},
                          lambda _url: ["127.0.0.2", "127.0.0.1"])
        assert got["status"] == 200 and server.connections == 1
        with pytest.raises(GateError) as refused:  # none answers: refused, nothing was sent
            out.perform("i1", {"method": "GET", "url": f"http://crm.localtest:{server.port}/"},
                        lambda _url: ["127.0.0.2", "127.0.0.3"])
        assert refused.value.code == "invalid_argument" and not refused.value.sent
    finally:
        server.close()


BRACKET_POLICY = http_policy("crm-sync", ["v1.api.localtest:*"], rule_id="api",
                             allow_private=["127.0.0.1"])


@pytest.mark.parametrize("netloc", ["admin.internal.corp[v1.api.localtest]:{port}",
                                    "[v1.api.localtest]:{port}"])
def test_the_server_reads_only_the_host_the_policy_decided(out: HttpOut, netloc: str) -> None:
    """urlsplit takes a URL's host from inside brackets (RFC 3986's IPvFuture `[v1.x]` too) and
    drops what stands before them, while the Host header carries the whole netloc: decided as
    the listed v1.api.localtest, the request reached its server as
    `Host: admin.internal.corp[v1.api.localtest]` (before: allowed and sent so)."""
    from policies import decide
    from policies.loader import load_policy_text
    from policies.types import Request

    policy = load_policy_text(BRACKET_POLICY)
    server = _answering(OK)

    def gate(url: str) -> list[str]:  # decides each hop as the gate does, resolver stubbed
        d = decide(policy, frozenset({"http"}), Request(
            "crm-sync", "i1", "http.request", {"method": "GET", "url": url},
            {"resolved_ips": ["127.0.0.1"], "own_ips": []}, 0.0))
        if not d.allowed:
            raise GateError("permission_denied", d.message)
        return ["127.0.0.1"]
    try:
        plain = f"http://v1.api.localtest:{server.port}/"
        assert out.perform("i1", {"method": "GET", "url": plain}, gate)["status"] == 200
        url = f"http://{netloc.format(port=server.port)}/"
        with pytest.raises(GateError) as refused:
            out.perform("i1", {"method": "GET", "url": url}, gate)
        assert refused.value.code == "permission_denied" and "bracket" in refused.value.message
        assert [h.split(b"\r\n")[1] for h in server.heads] == [
            f"Host: v1.api.localtest:{server.port}".encode()]
    finally:
        server.close()
