"""The serving host applies install changes while the chat server cannot answer whether an
app's own user is active (`Unavailable`: a remote workspace down or slow). Before, that
question raised out of every sync, so a disable, a revoked token or a retired key stopped no
running child until the server answered again.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servedhelp import serve_one, until

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host
from host.server.errors import Unavailable


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home, host = serve_one(tmp_path, "down")
    yield home, host
    host.stop()


def test_a_disable_stops_the_child_while_the_server_cannot_answer(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    until(lambda: any(r.session is not None for r in host.runners.values()), "the app to run")

    def down(*_a: Any, **_kw: Any) -> Any:
        raise Unavailable("the workspace does not answer")

    monkeypatch.setattr(host.credentials.server, "users_get", down)
    store = InstallStore(home.host_store)  # another process's connection
    rec = store.by_app("down")
    assert rec is not None
    store.set_enabled(rec.install_id, False, reason="test")
    store.close()
    until(lambda: not host.runners, "the disabled app's child to stop")
