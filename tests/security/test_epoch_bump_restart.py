"""A token-epoch bump ("revoke every app token", `InstallStore.bump_epoch`) made by another
process: the gate refuses the running children's next call, and the serving host starts each
child again with a token of the new epoch. Before, the sync compared generations only: the
children ran on with revoked tokens, still handed every event's data, every call refused.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servedhelp import event, serve_one, until
from servedhelp import runner as runner_of

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host


def _epoch_of_running(host: Host) -> int | None:
    r = runner_of(host)
    if r is None or r.session is None or r.state == "starting":
        return None
    return r.session.claims.epoch


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host]]:
    home, host = serve_one(tmp_path, "ep")
    yield home, host
    host.stop()


def test_an_epoch_bump_restarts_the_children_with_new_tokens(served) -> None:  # type: ignore[no-untyped-def]
    home, host = served
    until(lambda: event(host) and _epoch_of_running(host) is not None, "the app to run")
    old = _epoch_of_running(host)
    store = InstallStore(home.host_store)  # another process's connection
    new = store.bump_epoch()
    store.close()
    assert new != old
    until(lambda: event(host) and _epoch_of_running(host) == new,
           "a child holding a token of the new epoch")
