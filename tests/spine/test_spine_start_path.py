"""An app's start opens no store connection: runners hand theirs back when they stop, and the
host keeps some opened ahead of need (`host.store.pool`; docs/BENCH.md, "Where a cold start
goes": opening them was a third of a cold start)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy

from host.apps.installs import InstallRecord
from host.home import Home
from host.runtime import Host
from host.server.db import Database
from host.store.pool import POOL_IDLE_MAX
from host.store.sqlite import SqliteStore
from host.supervise.supervisor import AppRunner

POLICY = '''
schema = 1
name = "start-path"
[[rule]]
id = "starter-reads-users"
effect = "permit"
apps = ["starter"]
actions = ["users.get"]
'''

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        return ctx.users.get(event["uid"])["id"]
'''


def _starter(tmp_path: Path) -> tuple[Home, InstallRecord]:
    """A home with one app whose handler makes one bridge call, and the policy permitting it."""
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "start-path", POLICY)
    return home, install(home, write_app(tmp_path / "apps", "starter",
                                         ["livechat.read", "users.read"],
                                         ["livechat.room_started"], SRC))


def test_a_cold_start_and_its_first_call_open_no_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, rec = _starter(tmp_path)
    with Host(home) as h:
        uid = rec.app_user_id
        assert uid is not None
        h.rounds.warm_stores()  # the upkeep thread does this at start and every interval
        opened: list[str] = []
        for cls in (SqliteStore, Database):
            real = cls._open

            def counting(self: Any, _real: Any = real) -> Any:
                # The upkeep thread refills the pool ahead of need on its own schedule (its
                # first fill at start may even land here): that is the design, not the start.
                if threading.current_thread().name != "stockade-upkeep":
                    opened.append(type(self).__name__)
                return _real(self)

            monkeypatch.setattr(cls, "_open", counting)
        for _ in range(3):  # each runner's connections go back for the next one
            runner = AppRunner(h, rec)
            try:
                assert runner.submit("livechat.room_started", {"uid": uid}, 5.0).result(20) == uid
            finally:
                runner.stop("test: next start")
        assert opened == []


def test_a_running_app_keeps_no_connection_only_its_start_needed(tmp_path: Path) -> None:
    """The token registry, the uid table and the install store serve a start, not its calls:
    each start gives their connections back, so many running apps do not hold three idle
    connections each (~0.1 MiB apiece: 200 idle apps measured 181 -> 99 MiB of host memory)."""
    home, rec = _starter(tmp_path)
    with Host(home) as h:
        uid = rec.app_user_id
        runners = [AppRunner(h, rec) for _ in range(POOL_IDLE_MAX + 4)]
        try:
            for runner in runners:  # each started, each thread still alive afterwards
                assert runner.submit("livechat.room_started", {"uid": uid}, 5.0).result(20) == uid
            for store in (h.tokens.store, h.identities.store, h.installs.store):
                # the pool's idle ones, plus the threads outside the runners (main, watcher)
                assert len(store._opened) <= POOL_IDLE_MAX + 3, store
        finally:
            for runner in runners:
                runner.stop("test over")
