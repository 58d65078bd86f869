"""DNS rebinding against the REST API. A page of attacker.example whose name the attacker then
points at 127.0.0.1 reaches the loopback REST API as its own origin: the browser lets it read
every answer, and sends its JSON without a preflight. Sign-in and the chat widget's routes need
no credential, so such a page guessed passwords against an account's sign-in budget (locking
the admin out), registered visitors and read the answers, all from a browser that held nothing.
The REST API now answers only Host names it serves as (`host/server/resthosts.py`): loopback's,
any IP address (no page can rebind one), and those `serve --rest-host` / `--console-origin`
name. Before: every request below with `Host: attacker.example` was answered."""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from host.cli.main import root
from host.clock import SystemClock
from host.server import SYSTEM, EmbeddedServer
from host.server.auth import set_password
from host.server.listen import serving

PASSWORD = "correct horse battery"  # the admin's
REBOUND = ("attacker.example", "attacker.example:3000", "localhost.attacker.example",
           "127.0.0.1.attacker.example")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmbeddedServer]]:
    """The REST API on loopback, as a proxy names one public host for it."""
    server = EmbeddedServer(tmp_path_factory.mktemp("rebind") / "server.db", SystemClock())
    admin = server.users_create(SYSTEM, "boss", "Boss", "user", roles=["admin"])
    set_password(server.db, admin["id"], PASSWORD)
    with serving(server, hosts=["chat.example.com"]) as (url, _server, _uv):
        yield url, server
    server.close()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module's requests (a client made per request costs more than one)."""
    with httpx.Client(timeout=10) as c:
        yield c


def _refused(r: httpx.Response) -> None:
    """The refusal: a 400 in the API's JSON error shape, saying how to name a host."""
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["success"] is False and body["errorType"] == "error-invalid-host", body
    assert "--rest-host" in body["error"], body


@pytest.mark.parametrize("host", REBOUND)
def test_a_rebound_name_signs_in_nowhere_and_spends_no_budget(
        api: tuple[str, EmbeddedServer], http: httpx.Client, host: str) -> None:
    url, server = api
    login = {"user": "boss", "password": PASSWORD}
    r = http.post(f"{url}/api/v1/login", json=login, headers={"Host": host})
    _refused(r)
    assert "authToken" not in r.text
    r = http.post(f"{url}/api/v1/login", json={**login, "password": "guess"},
                  headers={"Host": host})
    _refused(r)
    # nothing ran behind the refusal: no failed sign-in was counted against the admin
    assert server.db.conn().execute("SELECT count(*) FROM sign_in_failures").fetchone()[0] == 0


@pytest.mark.parametrize("host", REBOUND)
def test_a_rebound_name_drives_no_widget(api: tuple[str, EmbeddedServer], http: httpx.Client,
                                         host: str) -> None:
    url, _server = api
    token = f"visitor-{host}"
    r = http.post(f"{url}/api/v1/livechat/visitor", json={"visitor": {"token": token}},
                  headers={"Host": host})
    _refused(r)
    _refused(http.get(f"{url}/api/v1/livechat/visitor/{token}", headers={"Host": host}))
    _refused(http.get(f"{url}/api/info", headers={"Host": host}))
    # the visitor was never registered: the loopback name finds none
    r = http.get(f"{url}/api/v1/livechat/visitor/{token}")
    assert r.status_code == 400 and r.json()["errorType"] == "error-invalid-visitor", r.text


def test_a_refusal_carries_what_every_rest_answer_carries(
        api: tuple[str, EmbeddedServer], http: httpx.Client) -> None:
    url, _server = api
    ok = http.get(f"{url}/api/info")
    refused = http.get(f"{url}/api/info", headers={"Host": "attacker.example"})
    _refused(refused)
    assert set(ok.headers) == set(refused.headers), (ok.headers, refused.headers)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "[::1]", "[::1]:{port}",
    "127.0.0.2:{port}",  # any loopback address
    "192.0.2.7:3000", "[2001:db8::7]",  # any address: no page can rebind an IP address
    "chat.example.com", "Chat.Example.COM:443", "chat.example.com.",  # the named public host
])
def test_loopback_addresses_and_named_hosts_are_answered(
        api: tuple[str, EmbeddedServer], http: httpx.Client, host: str) -> None:
    url, _server = api
    port = url.rsplit(":", 1)[1]
    r = http.get(f"{url}/api/info", headers={"Host": host.format(port=port)})
    assert r.status_code == 200 and r.json()["success"] is True, r.text


@pytest.mark.parametrize("host", [
    "", "chat.example.com.evil", "evil.chat.example.com", "[::1", "::1", "[::1]x",
    "127.0.0.1:x", "a b", "chat.example.com:", "[attacker.example]",
])
def test_other_and_malformed_names_are_refused(api: tuple[str, EmbeddedServer],
                                               http: httpx.Client, host: str) -> None:
    url, _server = api
    r = http.get(f"{url}/api/info", headers={"Host": host})
    _refused(r)


def _raw(url: str, head: bytes) -> tuple[bytes, dict[str, object]]:
    """Send a request as written (httpx sends one Host, always); its status line and JSON."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    top, _, body = answer.partition(b"\r\n\r\n")
    return top.split(b"\r\n")[0], json.loads(body)


def test_two_host_headers_are_refused(api: tuple[str, EmbeddedServer]) -> None:
    """A proxy or log may read the other one."""
    url, _server = api
    for pair in (b"127.0.0.1", b"attacker.example"), (b"attacker.example", b"127.0.0.1"):
        status, body = _raw(url, b"GET /api/info HTTP/1.1\r\nHost: %s\r\nHost: %s\r\n"
                            b"Connection: close\r\n\r\n" % pair)
        assert status == b"HTTP/1.1 400 Bad Request" \
            and body["errorType"] == "error-invalid-host", (status, body)


def test_a_request_with_no_host_is_answered(api: tuple[str, EmbeddedServer]) -> None:
    """HTTP/1.0 needs no Host, and a browser always sends one: nothing to rebind."""
    url, _server = api
    status, body = _raw(url, b"GET /api/info HTTP/1.0\r\n\r\n")
    assert status == b"HTTP/1.1 200 OK" and body["success"] is True, (status, body)


@pytest.mark.parametrize("bad", ["https://chat.example.com", "chat.example.com/api",
                                 "chat.example.com:443", "*.example.com", "", "ch at.example",
                                 "bücher.example", "-a.example", "a..example"])
def test_a_rest_host_is_a_host_name(tmp_path: Path, bad: str) -> None:
    r = CliRunner().invoke(root, ["--home", str(tmp_path / "home"), "serve",
                                  "--rest-host", bad])
    assert r.exit_code == 2 and "--rest-host" in r.output and "not a host name" in r.output, \
        r.output
    assert not (tmp_path / "home").exists()  # refused before anything was made


def test_serve_answers_the_names_it_is_given_and_no_other(tmp_path: Path) -> None:
    """`stockade serve` as run: the REST API in its front process, the names crossing to it
    (`--rest-in-host` hands the same names to the same `create_app`; not run again here, for the
    suite's time)."""
    from servehelp import serving as serve

    from host.home import Home

    args = ("--no-apps", "--rest-host", "Chat.Example.com",
            "--console-origin", "https://console.example.com:8443")
    with serve(Home(tmp_path / "home"), *args) as (_proc, port):
        url = f"http://127.0.0.1:{port}/api/info"
        for host in ("chat.example.com", "console.example.com:8443", f"localhost:{port}"):
            r = httpx.get(url, headers={"Host": host}, timeout=10)
            assert r.status_code == 200, (host, r.text)
        _refused(httpx.post(f"http://127.0.0.1:{port}/api/v1/login", timeout=10,
                            json={"user": "a", "password": "b"},
                            headers={"Host": "attacker.example"}))
