"""A token-epoch bump ("revoke every app token", `InstallStore.bump_epoch`) made by another
process: the gate refuses the running children's next call, and the serving host starts each
child again with a token of the new epoch. Before, the sync compared generations only: the
children ran on with revoked tokens, still handed every event's data, every call refused.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import AppRunner

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return "ok"
'''


def _until(pred: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home = Home(tmp_path / "home").ensure()
    install(home, write_app(tmp_path / "apps", "ep", ["livechat.read"],
                            ["livechat.room_started"], SRC))
    host = Host(home, config=HostConfig(event_deadline_s=5.0)).start()
    yield home, host
    host.stop()


def _runner(host: Host) -> AppRunner | None:
    return next(iter(host.runners.values()), None)


def _event(host: Host) -> bool:
    r = _runner(host)
    if r is None:
        return False
    try:
        return r.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
    except Exception:  # an event to a child that is being stopped
        return False


def _epoch_of_running(host: Host) -> int | None:
    r = _runner(host)
    if r is None or r.session is None or r.state == "starting":
        return None
    return r.session.claims.epoch


def test_an_epoch_bump_restarts_the_children_with_new_tokens(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    _until(lambda: _event(host) and _epoch_of_running(host) is not None, "the app to run")
    old = _epoch_of_running(host)
    store = InstallStore(home.host_store)  # another process's connection
    new = store.bump_epoch()
    store.close()
    assert new != old
    _until(lambda: _event(host) and _epoch_of_running(host) == new,
           "a child holding a token of the new epoch")
