"""An app's start opens no store connection: runners hand theirs back when they stop, and the
host keeps some opened ahead of need (`host.store.pool`; docs/BENCH.md, "Where a cold start
goes": opening them was a third of a cold start)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy

from host.home import Home
from host.runtime import Host
from host.server.db import Database
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


def test_a_cold_start_and_its_first_call_open_no_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "start-path", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "starter", ["livechat.read", "users.read"],
                                  ["livechat.room_started"], SRC))
    with Host(home) as h:
        uid = rec.app_user_id
        assert uid is not None
        h._warm_stores()  # the upkeep thread does this at start and every interval
        opened: list[str] = []
        for cls in (SqliteStore, Database):
            real = cls._open

            def counting(self: Any, _real: Any = real) -> Any:
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
