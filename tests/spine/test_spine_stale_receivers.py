"""An event whose receiver list was read before a sync stopped the runner (`Host.dispatch`
reads it, the pump enqueues later) is never left in the stopped runner's queue: it goes to the
runner the app continues in, or is dropped, counted and audited (`AppRunner.enqueue`)."""
from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

from apphelp import install, write_app, write_policy

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import EventDropped

SRC = '''
from stockade import App

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        print("handled " + str(event["n"]) + " with " + ctx.settings["tag"])
        return event["n"]
'''
TAG_SETTING = '''
[[setting]]
key = "tag"
type = "string"
label = "Tag"
default = "old"
'''
POLICY = '''
schema = 1
name = "t"
[[rule]]
id = "t"
effect = "permit"
apps = ["crm"]
actions = ["livechat.read"]
'''


def _crm(tmp_path: Path) -> tuple[Home, str]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "t", POLICY)
    rec = install(home, write_app(tmp_path / "apps", "crm", ["livechat.read"],
                                  ["livechat.room_started"], SRC, TAG_SETTING))
    return home, rec.install_id


def _drop_records(home: Home) -> list[str]:
    return [r.get("detail", "") for r in (json.loads(b) for (b,) in sqlite3.connect(
        home.host_db).execute("SELECT body FROM audit ORDER BY seq"))
        if r.get("event") == "events_dropped"]


def test_an_event_for_a_restarted_runner_reaches_the_new_one(tmp_path: Path) -> None:
    """Dispatch's two steps with a settings change's restart between them. Fails before: the
    event sat in the old runner's queue after its thread ended (never run, counted or audited;
    its delivery never settled)."""
    home, install_id = _crm(tmp_path)
    with Host(home, config=HostConfig()) as h:
        old = h.runners[install_id]
        old.ensure_started()
        assert h.wait_idle(10)
        receivers = h._receivers("livechat.room_started")  # dispatch, step 1
        assert receivers == (old,)
        with InstallStore(home.host_db) as store:
            store.set_settings(install_id, {"tag": "new"}, ["tag"])
        h.sync_installs()
        assert h.runners[install_id] is not old and old.state == "stopped"
        assert h.pump is not None
        delivery = h.pump.deliver("livechat.room_started", {"n": 1}, 5.0, receivers)  # step 2
        assert delivery.outcomes(8) == [1]
        assert old.dropped == {}
    log = (home.logs_dir / f"{install_id}.log").read_text()
    assert "handled 1 with new" in log


def test_an_event_for_a_disabled_runner_is_dropped_and_audited(tmp_path: Path) -> None:
    """The same with the app disabled: no runner continues it, so the event is a counted,
    audited drop. Fails before: never settled, no drop counted, nothing in the chain."""
    home, install_id = _crm(tmp_path)
    with Host(home, config=HostConfig()) as h:
        old = h.runners[install_id]
        old.ensure_started()
        assert h.wait_idle(10)
        receivers = h._receivers("livechat.room_started")
        with InstallStore(home.host_db) as store:
            store.set_enabled(install_id, False, "operator")
        h.sync_installs()
        assert install_id not in h.runners and old.state == "stopped"
        assert h.pump is not None
        delivery = h.pump.deliver("livechat.room_started", {"n": 1}, 5.0, receivers)
        outcome, = delivery.outcomes(8)
        assert isinstance(outcome, EventDropped)
        assert old.dropped == {"disabled": 1}
    assert any("livechat.room_started:disabled=1" in d for d in _drop_records(home))
    assert "handled 1" not in (home.logs_dir / f"{install_id}.log").read_text()


def test_no_event_is_lost_while_settings_restart_the_app_under_load(tmp_path: Path) -> None:
    """No hand-made interleaving: events dispatched while the operator changes settings ten
    times (each a restart). Every delivery settles: handled, or dropped and audited. (Before,
    about one in a few thousand never settled; a guard, not a reliable reproducer.)"""
    home, install_id = _crm(tmp_path)
    interval = sys.getswitchinterval()
    with Host(home, config=HostConfig()) as h:
        h.runners[install_id].ensure_started()
        assert h.wait_idle(10)
        deliveries = []
        stop = threading.Event()

        def fire() -> None:
            n = 0
            while not stop.is_set():
                deliveries.append(h.dispatch("livechat.room_started", {"n": n}))
                n += 1
                time.sleep(0.0005)

        sys.setswitchinterval(1e-5)  # more interleavings; no code changed
        try:
            t = threading.Thread(target=fire)
            t.start()
            for i in range(10):
                time.sleep(0.15)
                with InstallStore(home.host_db) as store:
                    store.set_settings(install_id, {"tag": f"v{i}"}, ["tag"])
                h.sync_installs()
            stop.set()
            t.join()
        finally:
            sys.setswitchinterval(interval)
        assert all(d.wait(20) for d in deliveries)
        # The new runner drops nothing but what its full queue sheds on a loaded machine (76
        # once, at load ~10: counted and audited as any overflow); the old ones' drops are
        # audited as theirs.
        reasons = {why for r in h.runners.values() for why, n in r.dropped.items() if n}
        assert reasons <= {"queue_full"}, reasons
