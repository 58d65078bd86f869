"""One app's failure in an install sync never stops the host's other install changes.

`Host.sync_installs` makes the running set match the install store: it stops disabled and
uninstalled apps, restarts changed ones and starts new ones, and the watcher calls it whenever
another process changes the store. Before, anything one app's start raised ended the whole
sync, and a disabled app's runner, already out of the running set, was never stopped:

- an app that declares its app user a livechat agent, whose app user an admin deactivated
  (a documented act: its tokens are revoked and it does not start): the host's agent step
  raised `Conflict` out of every sync, so `serve` did not start at all (no app of the home
  ran), and on a serving host a later `app disable` of another app left that app's child
  running, its disable hook never delivered;
- a store error in one step (the write lock held past the busy timeout while the host marked a
  disable hook done) ended the sync, and the watcher had already counted the change as seen:
  the disabled app's child ran on until some unrelated change.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from hookfaults import hook_mark_locked_once
from servedhelp import SRC, until

from host.apps.installs import InstallRecord, InstallStore
from host.clock import SystemClock
from host.home import Home
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer
from host.server.principals import SYSTEM
from host.supervise.supervisor import AppRunner

AGENT = '''
[[permission]]
name = "livechat.agents"
reason = "its app user serves the rooms it relays"
app_user_agent = true
departments = []
'''
PERMIT = '''
schema = 1
name = "bridge"
[[rule]]
id = "bridge-agents"
effect = "permit"
apps = ["bridge"]
actions = ["livechat.agents", "livechat.read"]
'''


def _home(tmp_path: Path) -> tuple[Home, InstallRecord, InstallRecord]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "bridge", PERMIT)
    bridge = install(home, write_app(tmp_path / "apps", "bridge", ["livechat.read"],
                                     ["livechat.room_started"], SRC, AGENT),
                     ["livechat.read", "livechat.agents"])
    plain = install(home, write_app(tmp_path / "apps", "plain", ["livechat.read"],
                                    ["livechat.room_started"], SRC), ["livechat.read"])
    return home, bridge, plain


def _start(home: Home) -> Host:
    return Host(home, config=HostConfig(event_deadline_s=5.0)).start()


def _runner(host: Host, install_id: str) -> AppRunner | None:
    return host.runners.get(install_id)


def _up(host: Host, install_id: str) -> bool:
    r = _runner(host, install_id)
    return r is not None and r.child is not None and not r.child.dead


def _disable(home: Home, install_id: str) -> None:
    store = InstallStore(home.host_store)  # another process's connection: the CLI's
    store.set_enabled(install_id, False, reason="operator")
    store.close()


def _deactivate_app_user(home: Home, install_id: str) -> None:
    store = InstallStore(home.host_store)
    rec = store.get(install_id)
    store.close()
    assert rec is not None and rec.app_user_id is not None
    EmbeddedServer(home.server_store, SystemClock()).users_set_active(SYSTEM, rec.app_user_id, False)


def _warm(host: Host, install_id: str) -> AppRunner:
    """The app's child up (a child starts at its first event)."""
    r = _runner(host, install_id)
    assert r is not None
    assert r.submit("livechat.room_started", {}, 5.0).result(15) == "ok"
    return r


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Home, Host, InstallRecord, InstallRecord]]:
    home, bridge, plain = _home(tmp_path)
    host = _start(home)
    yield home, host, bridge, plain
    host.stop()


def test_a_host_starts_though_an_agent_apps_user_is_deactivated(tmp_path: Path) -> None:
    """Fails before: `Host.start` raised Conflict ("user ... is deactivated"): no app ran."""
    home, bridge, plain = _home(tmp_path)
    _start(home).stop()  # makes both apps' users; the bridge's is made an agent
    _deactivate_app_user(home, bridge.install_id)
    host = _start(home)
    try:
        _warm(host, plain.install_id)
        assert _up(host, plain.install_id)
        assert not _up(host, bridge.install_id)  # no token for a deactivated app user
    finally:
        host.stop()


def test_a_disable_stops_the_child_though_another_apps_start_fails(served) -> None:  # type: ignore[no-untyped-def]
    """Fails before: every sync raised at the bridge's agent step, so the disabled app's
    runner left the running set with its child alive."""
    home, host, bridge, plain = served
    _warm(host, bridge.install_id)
    child = _warm(host, plain.install_id).child
    assert child is not None
    _deactivate_app_user(home, bridge.install_id)
    until(lambda: not _up(host, bridge.install_id), "the deactivated app's child to stop")
    _disable(home, plain.install_id)
    until(lambda: child.dead, "the disabled app's child to stop")
    assert plain.install_id not in host.runners


def test_a_store_error_in_one_step_leaves_no_disabled_app_running(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The write lock held past the busy timeout as the host marks the disable hook done.
    Fails before: the child ran on, and the change was never looked at again."""
    home, host, bridge, plain = served
    child = _warm(host, plain.install_id).child
    assert child is not None
    failed = hook_mark_locked_once(host.installs, monkeypatch)
    _disable(home, plain.install_id)
    until(lambda: child.dead, "the disabled app's child to stop")
    assert failed
    # The sync is tried again: the hook whose mark failed is marked done at last.
    until(lambda: not host.installs.pending_hooks(plain.install_id),
          "the failed sync to be tried again")
    _warm(host, bridge.install_id)  # the other app serves on
