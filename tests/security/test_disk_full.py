"""A full disk under the server's store (issue 26, "Faults"): a create that could not be written
is refused cleanly, and its quota unit and seat come back at once, so after space returns the
quotas, seats, audit and server agree exactly.

The disk is real: the server's database lives on a small tmpfs that the test fills, so SQLite
itself answers "database or disk is full" (ENOSPC). The home's `server.db` is a symlink into it;
SQLite resolves the link, so its WAL lives there too. Mounting needs root, as the suite runs.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from diskhelp import fill, move_onto, small_disk
from gatehelp import (
    APP_ID,
    QUOTA_LIMIT,
    QUOTA_WINDOW_S,
    add_seat_ceiling,
    build_rig,
    install_fuzz_app,
)

from host import doctor
from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.ledger import groupcommit
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from host.server.embedded import EmbeddedServer
from host.store.diskfull import DiskFullNotice
from host.supervise import disk_notice


@pytest.fixture(autouse=True)
def _own_disk_full_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk-full line is one per window for the whole process: each test here counts its
    own, whatever an earlier test in the process logged."""
    notice = DiskFullNotice()
    monkeypatch.setattr(groupcommit, "disk_full_notice", notice)
    monkeypatch.setattr(disk_notice, "disk_full_notice", notice)


def _create(rig, name: str) -> dict:
    return rig.gate.handle(rig.session, "users.create",
                           {"username": name, "name": name, "type": "bot", "roles": ["bot"]})


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_refuses_cleanly_and_gives_the_unit_back(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    # The server's data in a server.db of its own (a home made before its tables moved into
    # host.db), so only the server's store fills; the whole home on one disk is tested below.
    EmbeddedServer(home.root / "server.db", SystemClock()).close()
    install_fuzz_app(home)
    add_seat_ceiling(home)
    with small_disk(tmp_path / "disk") as disk:
        move_onto(home.server_db, disk / "server.db")
        rig = build_rig(home, SystemClock())
        key = f"install:{rig.install.install_id}:users.create#fuzz-create"
        _create(rig, "first")  # fits
        fillers = fill(disk)
        disk_check = next(c for c in doctor.disk_checks(home) if "server" in c.name)
        assert not disk_check.ok and "disk full" in disk_check.detail
        with pytest.raises(GateError) as refused:
            _create(rig, "second")
        assert refused.value.code == "internal"
        assert "disk full" in refused.value.message
        # The unit and the seat are back at once, and the decision is settled, not pending.
        assert rig.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 1
        assert rig.ledger.seats_in_use(rig.server.seats_in_use) == 1
        assert rig.ledger.pending_intents() == []
        for f in fillers:
            f.unlink()
        # Space is back: a restart changes nothing, and the next create works.
        rig.ledger.close()
        with Host(home, config=HostConfig(watch=False, use_zygote=False)) as host:
            assert host.ledger.pending_intents() == []
            assert host.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 1
            assert host.ledger.seats_in_use(host.server.seats_in_use) == 1
            assert host.server.count_users_created_by(APP_ID) == 1
        rig = build_rig(home, SystemClock())
        _create(rig, "third")
        assert rig.ledger.quota_state(key, QUOTA_LIMIT, QUOTA_WINDOW_S).used == 2
        rig.ledger.close()
        assert rig.ledger.audit.verify().ok


HOME_APP = '''
from stockade import App, StockadeError

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for name in event["names"]:
            try:
                out.append(ctx.users.create(username=name, name=name, type="bot")["username"])
            except StockadeError as e:
                out.append(["refused", "err", str(e)])
        try:
            out.append(ctx.users.get_by_username("made-before")["username"])
        except StockadeError as e:
            out.append(["refused", "err", str(e)])
        return out
'''

HOME_POLICY = '''
schema = 1
name = "homefull"
[[rule]]
id = "maker-read"
effect = "permit"
apps = ["maker"]
actions = ["livechat.read", "users.read"]
[[rule]]
id = "maker-create"
effect = "permit"
apps = ["maker"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "maker-create-rate"
apps = ["maker"]
action = "users.create"
limit = 10
window = "1h"
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_home_refuses_bridge_calls_with_one_line_and_loses_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The whole home (host.db with the server's tables, the anchor, logs) on one small disk, filled while a
    # real host serves an app: every call is refused cleanly (the app sees the reason, the log
    # gets one line and no traceback, however many calls), the host stops cleanly, and after
    # space returns a restart finds quotas, audit and server in agreement.
    with small_disk(tmp_path / "disk", size=16 << 20) as disk:
        home = Home(disk / "home").ensure()
        write_policy(home, "homefull", HOME_POLICY)
        install(home, write_app(tmp_path / "apps", "maker",
                                ["livechat.read", "users.read", "users.create"],
                                ["livechat.room_started"], HOME_APP))
        with caplog.at_level(logging.INFO), \
                Host(home, config=HostConfig(watch=False)) as host:
            runner = next(iter(host.runners.values()))
            key = f"install:{runner.install_id}:users.create#maker-create-rate"
            first = runner.submit("livechat.room_started", {"names": ["made-before"]},
                                  15.0).result(30)
            assert first == ["made-before", "made-before"], first
            # The reads' records may still wait for their group commit: committed now, so the
            # disk fills under the calls below, not under that commit (whose line would open
            # the log's window before `caplog.clear()` and leave none for the calls).
            assert host.ledger.batch is not None
            host.ledger.batch.flush()
            fillers = fill(disk)
            caplog.clear()
            full = runner.submit("livechat.room_started",
                                 {"names": [f"made-full-{i}" for i in range(5)]},
                                 15.0).result(30)
            assert len(full) == 6
            for answer in full:
                assert answer[0] == "refused" and "disk full" in answer[2], full
            lines = [r for r in caplog.records if r.name.startswith("stockade")]
            assert len(lines) == 1 and "disk full" in lines[0].getMessage(), \
                [r.getMessage() for r in lines]
            checks = {c.name: c for c in doctor.disk_checks(home)}
            assert not checks["disk (host store)"].ok
            assert "disk full" in checks["disk (host store)"].detail
        # ... and the host stopped with the disk still full: still no traceback
        assert all(r.exc_info is None for r in caplog.records), \
            [r.getMessage() for r in caplog.records if r.exc_info]
        assert "Traceback" not in caplog.text
        for f in fillers:
            f.unlink()
        with Host(home, config=HostConfig(watch=False)) as host:
            assert host.ledger.pending_intents() == []
            assert host.ledger.quota_state(key, 10, 3600.0).used == 1
            assert host.server.count_users_created_by("maker") == 1
            runner = next(iter(host.runners.values()))
            after = runner.submit("livechat.room_started", {"names": ["made-after"]},
                                  15.0).result(30)
            assert after == ["made-after", "made-before"], after
            assert host.ledger.quota_state(key, 10, 3600.0).used == 2
        assert open_readonly(home.host_db, SystemClock()).verify().ok
