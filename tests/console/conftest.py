"""A served console over real HTTP on loopback: the embedded server's REST app with the console
mounted at /console, exactly as `stockade serve` mounts it, over a home with two apps (one with
a hostile name) and an operator with a password."""
from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app
from conhelp import HOSTILE_NAME, PASSWORD, PROXY_ORIGIN, SRC, Served
from servehelp import in_thread
from starlette.routing import Mount

from host.clock import SystemClock
from host.console.app import create_console
from host.home import Home
from host.server import SYSTEM, EmbeddedServer
from host.server.auth import hash_password, store_hash
from host.server.listen import http_config
from host.server.rest import create_app


@pytest.fixture
def short_store_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's wait for a held store cut from 2 s to 0.5 s: the fault tests hold it ~20
    times, and what they check is that the answer comes without holding the event loop."""
    from host.console import faults

    monkeypatch.setattr(faults, "STORE_WAIT_S", 0.5)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _served(tmp_path, ())


@pytest.fixture
def served_behind_proxy(tmp_path: Path) -> Iterator[Served]:
    yield from _served(tmp_path, (PROXY_ORIGIN,))


@functools.cache
def _password_hash() -> str:
    """PASSWORD's scrypt hash, made once per test process: two a fixture were ~0.3 s of CPU
    for every console test (a quarter of the console tests' time). Each sign-in still checks
    the password against it with the product's scrypt."""
    return hash_password(PASSWORD)


def _served(tmp_path: Path, origins: tuple[str, ...]) -> Iterator[Served]:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "agent-sync", ["livechat.read"], [], SRC))
    hostile = write_app(tmp_path / "apps", "shady", ["livechat.read"], [], SRC)
    toml = (hostile / "app.toml").read_text().replace('name = "Shady"',
                                                      f'name = "{HOSTILE_NAME}"')
    (hostile / "app.toml").write_text(toml)
    install(home, hostile)
    server = EmbeddedServer(home.server_db, SystemClock())
    admin = server.users_create(SYSTEM, "operator", "Op", "user", roles=["admin"])
    store_hash(server.db, admin["id"], _password_hash())
    plain = server.users_create(SYSTEM, "agent007", "Agent", "user")
    store_hash(server.db, plain["id"], _password_hash())
    app = create_app(server, mounts=[Mount("/console", create_console(home, server,
                                                                  origins=origins))])
    # As `serve` configures the listener (`http_config`: no forwarding header renames the peer).
    with in_thread(http_config(app, host="127.0.0.1", port=0, log_level="warning",
                               lifespan="off")) as url:
        yield Served(url, home, server)
    server.close()
