"""Host-served bridges through a real child: outbound HTTP (domains, private addresses,
redirects re-checked, size cap) against a real loopback server, and rest.call as the
app's own server user (allow-listed routes only; see tests/security/test_rest_bridge.py)."""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from host.bridges import httpout
from host.bridges.ownaddrs import MachineAddresses
from host.demo.crm import DemoCrm
from host.gate import gate as gate_module
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.personal_tokens import ensure_service_user
from host.server.principals import SYSTEM

CALLER = '''
from stockade import App, PermissionDenied, InvalidArgument, Timeout

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for kind, a, b, c in event["calls"]:
            try:
                if kind == "http":
                    r = ctx.http.request(a, b)
                    out.append([r["status"], r["body"][:40]])
                else:
                    r = ctx.rest.call(a, b, c)
                    out.append([r["status"], r["body"].get("success"),
                                r["body"].get("username")])
            except PermissionDenied as e:
                out.append(["denied", str(e)])
            except InvalidArgument as e:
                out.append(["invalid", str(e)])
            except Timeout as e:
                out.append(["timeout", str(e)])
        return out
'''

POLICY = '''
schema = 1
name = "bridges"
[[rule]]
id = "caller-read"
effect = "permit"
apps = ["caller"]
actions = ["livechat.read"]
[[rule]]
id = "caller-http"
effect = "permit"
apps = ["caller"]
actions = ["http.request"]
[rule.when]
domains = ["crm.localtest:*", "hang.localtest", "own.localtest:*"]
allow_private = ["127.0.0.1"]
[[rule]]
id = "caller-rest"
effect = "permit"
apps = ["caller"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/users.info", "GET /api/v1/me", "GET /api/v1/livechat/department"]
rest_fields = []
'''


class Upstream(DemoCrm):
    """A loopback server with an OK page, a redirect off the allowed domain, and a huge page."""

    def __init__(self) -> None:
        super().__init__("unused")  # its port is known once started: read it per request

        async def ok(request: object) -> Response:
            return PlainTextResponse("fine")

        async def redir(request: object) -> Response:
            return RedirectResponse(f"http://other.localtest:{self.port}/ok", status_code=302)

        async def same(request: object) -> Response:
            return RedirectResponse(f"http://crm.localtest:{self.port}/ok", status_code=302)

        async def big(request: object) -> Response:
            return PlainTextResponse("x" * (2 << 20))

        async def bad_location(request: object) -> Response:
            # A location `urljoin` cannot take apart (it raises ValueError), after the
            # request has reached this server.
            return Response(status_code=302, headers={"location": "http://[oops/"})

        self._server.config.app = Starlette(routes=[
            Route("/ok", ok), Route("/redir", redir), Route("/same", same), Route("/big", big),
            Route("/bad-location", bad_location)])


@pytest.fixture()
def host(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "bridges", POLICY)
    install(home, write_app(tmp_path / "apps", "caller",
                            ["livechat.read", "http", "server.rest"],
                            ["livechat.room_started"], CALLER))
    up = Upstream().start()
    config = HostConfig(resolver_overrides={"crm.localtest": "127.0.0.1",
                                            "other.localtest": "127.0.0.1",
                                            "own.localtest": OWN_PUBLIC})
    with Host(home, config=config) as h:
        ensure_service_user(h.server, "svc")  # an admin exists; the app must not act as it
        yield h, up.port
    up.stop()


# A public address the test makes one of the machine's own (a fib_trie of its own, below).
OWN_PUBLIC = "93.184.216.34"


def _run(h: Host, calls: list) -> list:
    runner = next(iter(h.runners.values()))
    return runner.submit("livechat.room_started", {"calls": calls}, 15.0).result(30)


def test_http_domains_private_addresses_redirects_and_size(host) -> None:
    h, port = host
    res = _run(h, [
        ["http", "GET", f"http://crm.localtest:{port}/ok", None],
        ["http", "GET", f"http://crm.localtest:{port}/same", None],
        ["http", "GET", f"http://crm.localtest:{port}/redir", None],
        ["http", "GET", f"http://127.0.0.1:{port}/ok", None],
        ["http", "GET", f"http://other.localtest:{port}/ok", None],
        ["http", "GET", f"http://crm.localtest:{port}/big", None],
    ])
    assert res[0] == [200, "fine"]
    assert res[1] == [200, "fine"]  # a redirect within the allowed domain is followed
    assert res[2][0] == "denied" and "other.localtest" in res[2][1]  # re-checked, refused
    assert res[3][0] == "denied" and "127.0.0.1" in res[3][1]
    assert res[4][0] == "denied"
    assert res[5][0] == "invalid" and "larger than" in res[5][1]


def test_rest_call_acts_as_the_apps_own_user(host) -> None:
    h, _port = host
    h.server.users_create(SYSTEM, "alice", "Alice", "user")
    res = _run(h, [
        ["rest", "GET", "/api/v1/me", None],
        ["rest", "GET", "/api/v1/users.info", {"username": "alice"}],
        ["rest", "POST", "/api/v1/users.create", {"username": "x", "name": "x"}],
        ["rest", "GET", "/api/v1/../v1/users.info", {"username": "alice"}],
    ])
    assert res[0] == [200, True, "app.caller"]  # no bridge action: the app's own user
    # users.info is users.get_by_username: the app was not granted users.read
    assert res[1][0] == "denied" and "users.read" in res[1][1]
    assert res[2][0] == "denied" and "rest_routes" in res[2][1]
    assert res[3][0] == "denied"


def test_rest_department_list_is_the_bridge_read(host) -> None:
    h, _port = host
    h.server.add_department("Sales")
    res = _run(h, [["rest", "GET", "/api/v1/livechat/department", None],
                   ["rest", "GET", "/api/v1/livechat/department", {"count": "5"}]])
    # decided and served as livechat.list_departments (livechat.read is granted and permitted),
    # not run as the app's own user, which holds no livechat role (the server's route: 403)
    assert res[0] == [200, True, None]
    assert res[1][0] == "invalid" and "count" in res[1][1]
    reads = [e.body for e in h.ledger.audit.tail(50)
             if e.body.get("route") == "GET /api/v1/livechat/department"]
    assert reads and reads[0]["action"] == "livechat.list_departments"


def test_a_lookup_with_no_answer_is_a_timeout_not_a_missing_name(
        host, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listed name whose DNS server does not answer: the app is told the lookup timed out,
    naming the name. It was refused as "did not resolve to any address" by the policy, as if
    the name did not exist (the author looked for a typo)."""
    h, _port = host
    answer = threading.Event()
    real = httpout.socket.getaddrinfo

    def hanging(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "hang.localtest":
            answer.wait(10.0)
            raise socket.gaierror("gave up")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(httpout.socket, "getaddrinfo", hanging)
    monkeypatch.setattr(httpout, "DNS_TIMEOUT_S", 0.3)
    try:
        res = _run(h, [["http", "GET", "https://hang.localtest/x", None]])
    finally:
        answer.set()
    assert res[0][0] == "timeout", res
    assert "'hang.localtest' got no answer from its DNS server" in res[0][1]


def test_the_machines_own_public_address_is_not_a_public_service(
        host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listed name whose DNS answers with the machine's own public address: whatever listens
    on the machine's wildcard address would answer there as on loopback. Refused unless the
    permit's allow_private names it; the address was public to the engine, so it was allowed."""
    h, port = host
    trie = tmp_path / "fib_trie"
    trie.write_text(f"Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- {OWN_PUBLIC}\n"
                    "        /32 host LOCAL\n")
    monkeypatch.setattr(gate_module, "MACHINE",
                        MachineAddresses(fib_trie=trie, if_inet6=tmp_path / "none"))
    res = _run(h, [["http", "GET", f"http://own.localtest:{port}/ok", None],
                   ["http", "GET", f"http://{OWN_PUBLIC}:{port}/ok", None]])
    assert res[0][0] == "denied", res
    assert f"address {OWN_PUBLIC} of 'own.localtest' is this machine's own" in res[0][1]
    assert res[1][0] == "denied"  # as an IP literal too (its domain is not listed either)
