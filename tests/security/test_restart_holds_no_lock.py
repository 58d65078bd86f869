"""Starting an app again (its token revoked, its generation bumped, new settings, a key
retired, its token renewed) never holds up the other apps' events while its old runner ends.

The install sync stopped the old runner while holding the host's lock, which every event
dispatch takes (`Host._receivers`), and stopping a runner waits (up to 5 s) for its thread,
which may be inside a bridge call: an outbound HTTP request that the app's own server answers
slowly runs to the request's deadline. An app that keeps such a request open at all times then
stalled every other app's events for 5 s each time it was started again (every token renewal,
every revocation, every key rotation), and the watcher with them.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from apphelp import install, write_app, write_policy
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from host.apps.installs import InstallStore
from host.demo.crm import DemoCrm
from host.home import Home
from host.runtime import Host, HostConfig

CALLER = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        if "url" in event:
            ctx.http.request("GET", event["url"])
        return "ok"
'''
POLICY = '''
schema = 1
name = "drip"
[[rule]]
id = "read"
effect = "permit"
apps = ["caller", "other"]
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


class Dripper(DemoCrm):
    """A loopback server answering one byte every 2 s: an app's own slow server."""

    def __init__(self) -> None:
        super().__init__("unused")

        async def drip(request: object) -> Response:
            async def body() -> AsyncIterator[bytes]:
                for _ in range(30):
                    yield b"x"
                    await asyncio.sleep(2)
            return StreamingResponse(body(), media_type="text/plain")

        self._server.config.app = Starlette(routes=[Route("/drip", drip)])


OTHER = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def test_an_apps_restart_mid_request_holds_up_no_other_apps_event(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "drip", POLICY)
    caller = install(home, write_app(tmp_path / "apps", "caller", ["livechat.read", "http"],
                                     ["livechat.room_started"], CALLER))
    install(home, write_app(tmp_path / "apps", "other", ["livechat.read"],
                            ["livechat.room_started"], OTHER))
    up = Dripper().start()
    config = HostConfig(resolver_overrides={"crm.localtest": "127.0.0.1"}, http_deadline_s=20.0)
    try:
        with Host(home, config=config) as h:
            for runner in h.runners.values():
                runner.ensure_started()
            old = h.runners[caller.install_id]
            old.submit("livechat.room_started",
                       {"url": f"http://crm.localtest:{up.port}/drip"}, 30.0)
            time.sleep(1.0)  # the caller is inside its request
            with InstallStore(home.host_db) as store:
                store.bump_generation(caller.install_id)  # as `app tokens --revoke all` does
            deadline = time.monotonic() + 5
            while h.runners.get(caller.install_id) is old:
                assert time.monotonic() < deadline, "the watcher never took the change"
                time.sleep(0.01)
            t0 = time.monotonic()
            h.dispatch("livechat.room_started", {})
            waited = time.monotonic() - t0
            assert waited < 1.0, f"another app's event waited {waited:.1f} s for the restart"
    finally:
        up.stop()
