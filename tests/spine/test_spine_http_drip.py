"""Outbound HTTP against a real loopback server that drips its body (issue 18): the request is
cut at the host's TOTAL deadline (a byte every 2 s never trips a per-read timeout), the app sees
a clear error, and its next event runs while the drip would still be going. The host keeps one
pooled client per install (issue 26's leak: one client per request) and closes it at stop."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from host.demo.crm import DemoCrm
from host.home import Home
from host.runtime import Host, HostConfig

CALLER = '''
from stockade import App, InvalidArgument

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        try:
            r = ctx.http.request("GET", event["url"])
            return [r["status"], r["body"][:40]]
        except InvalidArgument as e:
            return ["invalid", str(e)]
'''

POLICY = '''
schema = 1
name = "drip"
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
domains = ["crm.localtest:*"]
allow_private = ["127.0.0.1"]
'''

DRIP_BYTES = 30  # 60 s of body at a byte every 2 s: far past any deadline here
DEADLINE_S = 3.0


class Dripper(DemoCrm):
    def __init__(self) -> None:
        super().__init__("unused")
        self.drip_finished = False

        async def ok(request: object) -> Response:
            return PlainTextResponse("fine")

        async def drip(request: object) -> Response:
            async def body() -> AsyncIterator[bytes]:
                for _ in range(DRIP_BYTES):
                    yield b"x"
                    await asyncio.sleep(2)
                self.drip_finished = True
            return StreamingResponse(body(), media_type="text/plain")

        self._server.config.app = Starlette(routes=[Route("/ok", ok), Route("/drip", drip)])


@pytest.fixture()
def drip_host(tmp_path: Path) -> Iterator[tuple[Host, Dripper]]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "drip", POLICY)
    install(home, write_app(tmp_path / "apps", "caller", ["livechat.read", "http"],
                            ["livechat.room_started"], CALLER))
    up = Dripper().start()
    config = HostConfig(resolver_overrides={"crm.localtest": "127.0.0.1"},
                        http_deadline_s=DEADLINE_S)
    with Host(home, config=config) as h:
        yield h, up
    up.stop()


def _get(h: Host, url: str) -> list[object]:
    runner = next(iter(h.runners.values()))
    result: list[object] = runner.submit("livechat.room_started", {"url": url},
                                         30.0).result(40)
    return result


def test_a_dripping_response_is_cut_at_the_total_deadline_and_later_events_run(
        drip_host: tuple[Host, Dripper]) -> None:
    h, up = drip_host
    cut = _get(h, f"http://crm.localtest:{up.port}/drip")
    assert cut[0] == "invalid" and "total deadline" in str(cut[1]), cut
    # the app's next event runs and its request is served while the drip would still go on
    assert _get(h, f"http://crm.localtest:{up.port}/ok") == [200, "fine"]
    assert not up.drip_finished


def test_one_pooled_client_per_install_closed_when_the_host_stops(
        drip_host: tuple[Host, Dripper]) -> None:
    h, up = drip_host
    for _ in range(5):
        assert _get(h, f"http://crm.localtest:{up.port}/ok") == [200, "fine"]
    assert h.httpout.created == 1 and h.httpout.open_clients() == 1
    h.stop()
    assert h.httpout.open_clients() == 0
