"""The policy page in `serve`'s front process when the host does not answer which revision it
enforces (busy past the 2 s the front waits, or its link gone): the page said "No host runs apps
in this process (`stockade serve --no-apps`)", which is false there (a host runs the apps; it
did not answer). It says it cannot tell, and why."""
from __future__ import annotations

import socket
from pathlib import Path

import httpx
from conhelp import PASSWORD

from host.bench.rest_http import serving
from host.clock import SystemClock
from host.console.front_main import console_mount
from host.home import Home
from host.server import SYSTEM, EmbeddedServer
from host.server.auth import set_password
from host.server.front_proc import HostCalls
from host.server.frontlink import Link


def test_a_host_that_does_not_answer_is_cannot_tell_not_no_host(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    server = EmbeddedServer(home.server_db, SystemClock())
    op = server.users_create(SYSTEM, "operator", "Op", "user", roles=["admin"])
    set_password(server.db, op["id"], PASSWORD)
    front_end, host_end = socket.socketpair()  # the host's end: never answers
    calls = HostCalls(Link(front_end), hook_wait_s=1.0)
    try:
        with serving(server, mounts=list(console_mount(home, server, calls))) as (
                base, _srv, _uv), httpx.Client(base_url=base, timeout=15) as c:
            c.post("/console/login", data={"username": "operator", "password": PASSWORD},
                   headers={"Origin": base})
            silent = c.get("/console/policy").text
            host_end.close()  # the link gone: the host stopped
            gone = c.get("/console/policy").text
    finally:
        front_end.close()
        server.close()
    for page in (silent, gone):
        assert "No host runs apps" not in page, page
        assert "cannot tell" in page.lower() and "did not answer" in page, page
