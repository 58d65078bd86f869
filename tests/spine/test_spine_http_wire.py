"""What the host's outbound HTTP puts on the wire and hands back (`host.bridges.httpout`),
against real loopback servers: the request line and headers a server receives, the response
headers an app sees, and TLS that refuses a certificate the system does not trust."""
from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from httprig import Loopback, read_head, redirect_to

from host.bridges.httpout import USER_AGENT, HttpOut
from host.errors import GateError

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Twice: a\r\nX-Twice: b\r\n"
            b"Set-Cookie: one\r\n\r\nok")


class OneShot(Loopback):
    """A server that answers each connection's first request with RESPONSE (or, first, each of
    `answers` in turn) and keeps the bytes it received; `tls` wraps it in a self-signed
    certificate for crm.localtest."""

    def __init__(self, tmp_path: Path, tls: bool = False, answers: tuple[bytes, ...] = ()) -> None:
        self.received: list[bytes] = []
        self.answers = list(answers)
        self.context: ssl.SSLContext | None = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert, key = _self_signed(tmp_path)
            self.context.load_cert_chain(cert, key)
        super().__init__(lambda _head: self.answers.pop(0) if self.answers else RESPONSE)

    def handle(self, conn: socket.socket) -> None:
        if self.context is None:
            self._take(conn)
            return
        with self.context.wrap_socket(conn, server_side=True) as tls:  # refused: SSLError
            self._take(tls)

    def _take(self, conn: socket.socket) -> None:
        head, _, body = read_head(conn).partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                while len(body) < int(line.split(b":")[1]):
                    body += conn.recv(65536)
        self.received.append(head + b"\r\n\r\n" + body)
        conn.sendall(self.answer(head))


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crm.localtest")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("crm.localtest")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _get(out: HttpOut, port: int, more: dict[str, object] | None = None,
         scheme: str = "http") -> dict[str, Any]:
    """A GET of crm.localtest's `/` on `port`, pinned to loopback, `more` laid over the args."""
    args = {"method": "GET", "url": f"{scheme}://crm.localtest:{port}/", **(more or {})}
    return out.perform("i1", args, lambda _url: ["127.0.0.1"])


@pytest.fixture()
def out() -> Iterator[HttpOut]:
    o = HttpOut(deadline_s=5.0)
    yield o
    o.close()


def test_the_request_names_the_host_and_its_body_and_asks_for_it_uncompressed(
        tmp_path: Path, out: HttpOut) -> None:
    server = OneShot(tmp_path)
    try:
        got = out.perform("i1", {
            "method": "POST", "url": f"http://crm.localtest:{server.port}/in box?q=a b",
            "body": "héllo", "headers": {"X-Api-Key": "k", "Accept-Encoding": "gzip"}},
            lambda _url: ["127.0.0.1"])
    finally:
        server.close()
    (raw,) = server.received
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /in%20box?q=a%20b HTTP/1.1"  # pinned to the address, never raw
    sent = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    assert sent[b"host"] == f"crm.localtest:{server.port}".encode()
    assert sent[b"content-length"] == b"6" and body == "héllo".encode()
    assert sent[b"accept-encoding"] == b"identity"  # the app's gzip is replaced
    assert sent[b"user-agent"] == USER_AGENT.encode() and sent[b"x-api-key"] == b"k"
    # What the app sees: lower-cased names, a repeated header's values joined.
    assert got == {"status": 200, "body": "ok", "headers": {
        "content-length": "2", "x-twice": "a, b", "set-cookie": "one"}}


def test_a_certificate_the_system_does_not_trust_is_refused(tmp_path: Path,
                                                            out: HttpOut) -> None:
    server = OneShot(tmp_path, tls=True)
    try:
        with pytest.raises(GateError, match="HTTP request failed: ConnectError") as caught:
            _get(out, server.port, scheme="https")
    finally:
        server.close()
    assert server.received == []  # nothing of the request was sent
    assert not caught.value.sent  # so its unit comes back


def test_a_redirect_follows_its_whole_location_though_the_app_sees_it_cut(
        tmp_path: Path, out: HttpOut) -> None:
    """The app's copy of a header is cut at 1 KiB; the hop must go where the server said."""
    target = "/next?" + "a" * 1500 + "END"
    server = OneShot(tmp_path, answers=(redirect_to(target),))
    try:
        got = _get(out, server.port)
    finally:
        server.close()
    assert got["status"] == 200
    assert [r.split(b" ")[1] for r in server.received] == [b"/", target.encode()]


def test_a_redirect_to_an_overlong_location_is_refused(tmp_path: Path, out: HttpOut) -> None:
    target = "/next?" + "a" * 9000
    server = OneShot(tmp_path, answers=(redirect_to(target),))
    try:
        with pytest.raises(GateError, match="location is over") as caught:
            _get(out, server.port)
    finally:
        server.close()
    assert len(server.received) == 1
    assert caught.value.sent  # the first request went out: its unit is kept


@pytest.mark.parametrize("args", [
    {"headers": {"X-Name": "caf\u00e9"}},  # not ASCII: cannot be sent as it is
    {"headers": {"X-N\u00e4me": "v"}},
    {"headers": [["X-Name", "v"]]},  # not an object: its names need not be strings
    {"headers": [[1, "v"]]},
    {"method": "G\u00c9T"},
    {"method": "GET / HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET"},
    {"method": "GET /"},
], ids=["value", "name", "pairs", "int-name", "method", "method-crlf", "method-space"])
def test_what_cannot_go_on_the_wire_is_the_apps_mistake(
        tmp_path: Path, out: HttpOut, args: dict[str, object]) -> None:
    """Refused as `invalid_argument` (refunded) before anything is sent, never an `internal`
    error that keeps the unit."""
    server = OneShot(tmp_path)
    try:
        with pytest.raises(GateError) as caught:
            _get(out, server.port, args)
    finally:
        server.close()
    assert caught.value.code == "invalid_argument" and not caught.value.sent  # refunded
    assert server.received == []


def test_a_server_dripping_its_headers_is_cut_at_the_total_deadline() -> None:
    """A header byte every 0.3 s never trips a per-read timeout; the request's one deadline
    (here 1 s) must still end it, long before the 6 s the drip would take."""
    sock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            for _ in range(20):
                if stop.wait(0.3):
                    return
                try:
                    conn.sendall(b"a")
                except OSError:
                    return
            conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=drip, daemon=True).start()
    out = HttpOut(deadline_s=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(GateError, match="total deadline") as caught:
            _get(out, sock.getsockname()[1])
    finally:
        stop.set()
        out.close()
        sock.close()
    assert time.monotonic() - started < 3.0
    assert caught.value.sent  # the request went out before the drip began


@pytest.mark.parametrize("same_origin", [True, False], ids=["same-origin", "other-origin"])
def test_credentials_follow_a_redirect_only_within_the_origin(
        tmp_path: Path, out: HttpOut, same_origin: bool) -> None:
    """An app's credentials were meant for the origin it named, and a credential may be any
    header (`X-Api-Key` here): a redirect to another origin (here another port) carries only
    the headers that describe the request (`Accept`), none of the others."""
    there = OneShot(tmp_path)
    target = "/next" if same_origin else f"http://crm.localtest:{there.port}/next"
    here = OneShot(tmp_path, answers=(redirect_to(target),))
    try:
        got = _get(out, here.port, {"headers": {
            "Authorization": "Bearer s3cret", "Cookie": "sid=1", "X-Api-Key": "k",
            "Accept": "application/json"}})
    finally:
        here.close()
        there.close()
    assert got["status"] == 200
    second = (here.received if same_origin else there.received)[-1].lower()
    assert b"accept: application/json" in second
    assert (b"x-api-key: k" in second) is same_origin
    assert (b"bearer s3cret" in second) is same_origin
    assert (b"sid=1" in second) is same_origin


@pytest.mark.parametrize(("status", "resent"), [
    (301, False), (302, False), (303, False), (307, True), (308, True)])
def test_only_307_and_308_send_a_post_and_its_body_on(
        tmp_path: Path, out: HttpOut, status: int, resent: bool) -> None:
    """As browsers and httpx have it: 301, 302 and 303 answer a POST with a GET of the new
    place, without the body (which may hold what was meant for the first URL only); 307 and
    308 repeat the request as it was."""
    server = OneShot(tmp_path, answers=(redirect_to("/next", status),))
    try:
        got = _get(out, server.port, {"method": "POST", "body": "transcript",
                                      "headers": {"Content-Type": "application/json"}})
    finally:
        server.close()
    assert got["status"] == 200
    first, second = server.received
    assert first.startswith(b"POST / ") and first.endswith(b"transcript")
    assert second.startswith(b"POST /next " if resent else b"GET /next ")
    assert second.endswith(b"transcript") is resent
    assert (b"content-length" in second.lower()) is resent
