from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from srvhelp import Recorder

from host.clock import ManualClock
from host.server import Caller, EmbeddedServer


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path,
           clock: ManualClock) -> Iterator[EmbeddedServer]:
    """The embedded server on its SQLite file, and on a real PostgreSQL (several hosts'
    shared workspace, docs/SCALE.md): every server test runs on both."""
    if request.param == "sqlite":
        s = EmbeddedServer(tmp_path / "server.db", clock)
    else:
        from host.migrate import migrate

        url = request.getfixturevalue("pg_url")
        migrate(url)
        s = EmbeddedServer(url, clock)
    yield s
    s.close()


@pytest.fixture
def events(server: EmbeddedServer) -> Recorder:
    r = Recorder()
    server.subscribe(r)
    return r


@pytest.fixture
def app(server: EmbeddedServer) -> Caller:
    """An installed app with its own app user."""
    u = server.create_app_user("agent-sync", "Agent Sync")
    return Caller("agent-sync", "inst-1", u["id"])


@pytest.fixture
def other_app(server: EmbeddedServer) -> Caller:
    u = server.create_app_user("other-app", "Other App")
    return Caller("other-app", "inst-2", u["id"])

