"""Lifecycle hooks and calls out of a handler, as the host has them: on_disable's and
on_uninstall's bridge calls refused (docs/EVENTS.md), a call made after its handler returned
refused as the child refuses it, and each hook's documented fields."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.apps.installs import InstallStore
from host.home import Home
from host.runtime import Host
from sandbox import runtime
from sandbox.errors import InvalidArgument
from sandbox.harness import AppHarness

BYE = '''
from stockade import App, PermissionDenied


class TestApp(App):
    def on_disable(self, ctx, event):
        return self.attempt(ctx)

    def on_uninstall(self, ctx, event):
        return self.attempt(ctx)

    def attempt(self, ctx):
        try:
            ctx.store.put("bye", True)
            print("hook: put ok")
            return "put ok"
        except PermissionDenied as exc:
            print("hook: PermissionDenied: " + str(exc))
            return "PermissionDenied: " + str(exc)
'''


def test_on_disable_calls_are_refused_as_the_real_host_refuses_them(tmp_path: Path) -> None:
    folder = write_app(tmp_path / "src", "bye-app", ["persistence"], [], BYE)
    h = AppHarness.from_dir(folder)
    in_harness = h.disable(reason="maintenance")
    assert h.errors == [("persistence.put", "permission_denied")]

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "p", 'schema = 1\nname = "p"\n')
    rec = install(home, folder)
    log = home.logs_dir / f"{rec.install_id}.log"
    with Host(home) as host:
        next(iter(host.runners.values())).ensure_started()
        with InstallStore(home.host_db) as store:
            store.set_enabled(rec.install_id, False, "operator")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (log.exists() and "hook:" in log.read_text()):
            time.sleep(0.1)
    on_host = [line.split("hook: ", 1)[1] for line in log.read_text().splitlines()
               if "hook: " in line]
    assert on_host == [in_harness] == ["PermissionDenied: app 'bye-app' is disabled"]
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def test_on_uninstall_calls_are_refused_and_the_hook_holds_users(tmp_path: Path) -> None:
    folder = write_app(tmp_path / "src", "bye-app", ["persistence", "users.create"], [],
                       BYE.replace("return self.attempt(ctx)\n\n    def on_uninstall",
                                   "return self.attempt(ctx)\n\n    def on_x")
                       + "\n    def on_uninstall(self, ctx, event):\n"
                         "        return [event, self.attempt(ctx)]\n")
    h = AppHarness.from_dir(folder)
    made = h.ctx.users.create("ext-made", "Made", type="user")
    h.ctx.store.put("k", 1)
    event, refused = h.uninstall(users="deactivate")
    assert event == {"hook": "uninstall", "users": "deactivate"}
    assert refused == "PermissionDenied: app 'bye-app' is no longer installed"
    assert h.server.store == {} and h.server.users[made["id"]]["active"] is False
    assert h.uninstall()[0] == {"hook": "uninstall", "users": "keep"}


def test_on_update_holds_the_version_and_the_diff(tmp_path: Path) -> None:
    folder = write_app(tmp_path / "src", "upd-app", ["persistence"], [],
                       "from stockade import App\n\nclass TestApp(App):\n"
                       "    def on_update(self, ctx, event):\n        return event\n")
    h = AppHarness.from_dir(folder)
    event = h.update()
    assert event["hook"] == "update" and event["version"] == "1.0.0"
    assert event["diff"]["kept"] == ["persistence"] and event["diff"]["needs_consent"] is False
    from host.apps.appdiff import PermissionDiff
    assert set(event["diff"]) == set(PermissionDiff.__dataclass_fields__) | {"needs_consent"}
    assert h.update("2.0.0", {"added": ["http"]}) == {
        "hook": "update", "version": "2.0.0", "diff": {"added": ["http"]}}


LATE = '''
from stockade import App


class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        def steps():
            try:
                yield 1
            finally:
                ctx.store.put("late", True)
        self.gen = steps()
        next(self.gen)
        return "started"
'''


def test_a_call_after_its_handler_returned_is_refused_as_the_child_refuses_it(
        tmp_path: Path) -> None:
    folder = write_app(tmp_path / "src", "late-app", ["persistence", "livechat.read"],
                       ["livechat.room_started"], LATE)
    h = AppHarness.from_dir(folder)
    assert h.fire("livechat.room_started", h.start_room(h.add_visitor("Ann")["id"])) == \
        "started"
    with pytest.raises(InvalidArgument) as refused:
        h.app.gen.close()  # the generator's finally runs now, outside any handler
    message = ("persistence.put: bridge calls are made only while a handler runs (this code "
               "ran after its event ended, e.g. in a generator's finally)")
    assert str(refused.value) == message
    child = runtime._Channel.__new__(runtime._Channel)  # the child's channel, no descriptor
    child.in_event = False
    with pytest.raises(InvalidArgument) as in_child:
        child.call("persistence.put", {"key": "late", "value": 1})
    assert str(in_child.value) == message  # the child's own words
    assert "late" not in h.server.store
    h.ctx.store.put("from-the-test", 1)  # the test's own context calls as before
