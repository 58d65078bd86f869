"""An app the operator disabled or uninstalled gets no event from then on, also one whose
receivers were read before the change.

A chain of pre-send hooks reads its receivers once, before the first hook, and takes up to a
deadline a hook; only the policy was asked again as each turn came, so an app disabled while an
earlier hook ran was shown the visitor's words (and its rewrite applied), or, once stopped,
failed the message closed. A post event dispatched just before the change (its receiver list
read, the pump's inbox) was queued behind the ended app's disable hook and run after it.

Real host, real confined children.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy
from reloadhelp import HOOK_PERMS, SECRET, app_log, permit, send_meanwhile

from host.apps.installs import InstallStore
from host.apps.operations import uninstall_app
from host.home import Home
from host.runtime import Host, HostConfig
from host.supervise.supervisor import EventDropped

SLOW = '''
import time
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        time.sleep(0.6)
'''
SPY = '''
import time
from stockade import App

class TestApp(App):
    def on_message_pre_send(self, ctx, event):
        print("SAW " + event["message"]["text"])
        return {"text": "rewritten by a disabled app"}

    def on_disable(self, ctx, event):
        time.sleep(1.0)  # still ending when its hook's turn comes
'''


@pytest.mark.parametrize("how", ["disable", "uninstall"])
def test_an_app_ended_during_the_chain_is_not_shown_the_message(tmp_path: Path,
                                                                how: str) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "hooks", permit("hooks", ["a-slow", "b-spy"]))
    install(home, write_app(tmp_path / "apps", "a-slow", HOOK_PERMS, ["message.pre_send"], SLOW))
    spy = install(home, write_app(tmp_path / "apps", "b-spy", HOOK_PERMS, ["message.pre_send"],
                                  SPY))
    with Host(home, config=HostConfig(pre_send_deadline_s=5.0)) as h:
        slow = next(r for r in h.runners.values() if r.app_id == "a-slow")
        for runner in h.runners.values():
            runner.ensure_started()
        visitor = h.server.save_visitor("visitor-chain", "V")
        room = h.server.visitor_start_room(visitor["id"])["id"]
        t, sent = send_meanwhile(h, visitor["id"], room)
        deadline = time.monotonic() + 5
        while slow.idle() and time.monotonic() < deadline:  # a-slow's hook is running
            time.sleep(0.005)
        assert not slow.idle()
        if how == "disable":
            with InstallStore(home.host_db) as store:
                store.set_enabled(spy.install_id, False, "operator")
        else:
            with InstallStore(home.host_db) as store:
                uninstall_app(home, store, spy, users="keep", agents="keep")
        h.sync_installs(wait_hooks=False)  # as the watcher does
        t.join(30)
        assert h.wait_idle(10)
    # The message kept its text (the ended app's rewrite was applied) ...
    assert sent and sent[0]["text"] == SECRET  # type: ignore[index]
    # ... and the ended app never saw it (an uninstalled app's log is deleted with it).
    assert SECRET not in app_log(home, spy)


LISTENER = '''
import time
from stockade import App

class TestApp(App):
    def on_livechat_guest_saved(self, ctx, event):
        print("SAW " + str(event["visitor"]["email"]))

    def on_disable(self, ctx, event):
        time.sleep(0.4)  # the event below lands while its disable hook runs
'''


def test_an_event_dispatched_just_before_a_disable_is_dropped_not_run_after_the_hook(
        tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "listen", permit("listen", ["b-listen"], ["livechat.read"]))
    rec = install(home, write_app(tmp_path / "apps", "b-listen", ["livechat.read"],
                                  ["livechat.guest_saved"], LISTENER))
    with Host(home) as h:
        runner = next(iter(h.runners.values()))
        runner.ensure_started()
        assert h.pump is not None
        stale = h._receivers("livechat.guest_saved")  # a dispatch read them, then the change
        assert stale == (runner,)
        with InstallStore(home.host_db) as store:
            store.set_enabled(rec.install_id, False, "operator")
        h.sync_installs(wait_hooks=False)  # as the watcher does: the disable hook runs now
        deadline = time.monotonic() + 5
        while runner.idle() and time.monotonic() < deadline:
            time.sleep(0.005)
        payload = {"visitor": {"id": "v1", "token": "t", "name": "V", "email": "ann@example.com",
                               "custom_fields": {}, "created_at": 0.0}}
        delivery = h.pump.deliver("livechat.guest_saved", payload, 5.0, stale,
                                  h.policy.current())
        [outcome] = delivery.outcomes(10)
        # "disabled" whether it landed while the hook ran (`end_events`) or, on a slow machine,
        # after the runner stopped (`_enqueue_late`): before, the second said "stopped" (CI).
        assert isinstance(outcome, EventDropped) and "disabled" in str(outcome), outcome
    log = (home.logs_dir / f"{rec.install_id}.log").read_text()
    assert "ann@example.com" not in log
