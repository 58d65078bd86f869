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


@pytest.fixture
def server(tmp_path: Path, clock: ManualClock) -> Iterator[EmbeddedServer]:
    s = EmbeddedServer(tmp_path / "server.db", clock)
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

