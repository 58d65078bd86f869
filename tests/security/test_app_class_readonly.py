"""The app-facing classes are read-only to app code (issue 18): an app may subclass `App`, never
write onto it. Before, `App.on_livechat_room_started = ...` worked, and in the author harness,
where several apps share one interpreter, one app's planted handler ran inside another's."""
from __future__ import annotations

import pytest

from host.supervise.sandbox_exec import run_snippet
from sandbox.harness import AppHarness
from sandbox.harness_server import HarnessError
from sandbox.loader import LoadFailed
from sandbox.restricted import SandboxViolation

MANIFEST = {"id": "{id}", "name": "N", "version": "0.1.0", "author": "t", "api": ">=1,<2",
            "entry": "main:A", "events": ["livechat.room_started"],
            "permission": [{"name": "livechat.read", "reason": "The test reads rooms."}]}


@pytest.mark.parametrize("attack", [
    "App.on_livechat_room_started = lambda self, ctx, event: 'planted'",
    "App.on_message_sent = 1",
    "del App.on_install",
    "setattr(App, 'on_livechat_room_started', 1)",
])
def test_a_confined_child_refuses_writes_onto_app(attack: str) -> None:
    out: list[str] = []
    res = run_snippet(f"from stockade import App\n{attack}\nprint('ESCAPED')\n",
                      timeout=5.0, write=out.append)
    assert "ESCAPED" not in "".join(out)
    assert res.exit_code == 1 and "SandboxViolation" in res.message, res.message


def test_one_app_cannot_plant_a_handler_into_another_in_the_harness() -> None:
    evil = ("from stockade import App\n"
            "App.on_livechat_room_started = lambda self, ctx, event: 'planted'\n"
            "class A(App):\n    pass\n")
    with pytest.raises((LoadFailed, SandboxViolation), match="cannot modify"):
        AppHarness({**MANIFEST, "id": "evil"}, {"main": evil})
    # Another app that lists the event but defines no handler: nothing of the first app's
    # may answer for it (before, the planted handler did, and returned 'planted').
    good = AppHarness({**MANIFEST, "id": "good"},
                      {"main": "from stockade import App\nclass A(App):\n    pass\n"})
    with pytest.raises(HarnessError, match="no handler"):
        good.fire("livechat.room_started", {"room": {"id": "r"}})


def _harness(app_id: str, modules: dict[str, str]) -> AppHarness:
    return AppHarness({**MANIFEST, "id": app_id}, modules)


HANDLER = ("from stockade import App\nclass A(App):\n"
           "    def on_livechat_room_started(self, ctx, event):\n"
           "        import helper\n        return helper.answer()\n")


def test_an_app_imports_only_its_own_modules_in_the_harness() -> None:
    """Each app loaded into the harness gets a namespace of its own: its `import helper` at
    event time reaches its own module even after another app with a `helper` was loaded.
    Before, the import table was one per process and held the app loaded last, so the second
    app's (planted) module answered for the first."""
    good = _harness("good", {"main": HANDLER,
                             "helper": "def answer():\n    return 'good'\n"})
    _harness("evil", {"main": HANDLER, "helper": "def answer():\n    return 'planted'\n"})
    assert good.fire("livechat.room_started", {"room": {"id": "r"}}) == "good"


@pytest.mark.parametrize("attack", [
    "ctx.users = None",
    "ctx.users.get = lambda *a: 'planted'",
    "ctx.log = None",
    "setattr(ctx.users, 'get', 1)",
    "del ctx.users",
    "delattr(ctx, 'log')",
])
def test_the_ctx_facades_are_read_only(attack: str) -> None:
    src = ("from stockade import App\nclass A(App):\n"
           "    def on_livechat_room_started(self, ctx, event):\n"
           f"        {attack}\n        return 'ESCAPED'\n")
    app = _harness(f"w{abs(hash(attack)) % 10**6}", {"main": src})
    with pytest.raises(SandboxViolation):
        app.fire("livechat.room_started", {"room": {"id": "r"}})
