"""Loading apps through the sandbox loader, firing events, lifecycle, settings, the fake
server's livechat behaviour, and the example manifests against the host's model."""
from pathlib import Path

import pytest
from harness_helpers import write_app

from host.apps.manifest import parse_manifest
from sandbox.errors import Conflict, PermissionDenied
from sandbox.harness import AppHarness, HarnessError
from sandbox.loader import LoadFailed
from sandbox.restricted import SandboxViolation

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"


# -- RestrictedPython refusals surface when the app loads -------------------------------------

def test_private_names_are_refused_at_load(tmp_path):
    src = "from stockade import App\n_secret = 1\nclass Probe(App):\n    pass\n"
    with pytest.raises(LoadFailed, match="_secret"):
        AppHarness.from_dir(write_app(tmp_path, source=src))


def test_imports_outside_the_allow_list_are_refused_at_load(tmp_path):
    src = "import os\nfrom stockade import App\nclass Probe(App):\n    pass\n"
    with pytest.raises(ImportError, match="'os' is not allowed"):
        AppHarness.from_dir(write_app(tmp_path, source=src))


def test_dunder_attribute_tricks_are_refused_at_load(tmp_path):
    src = "from stockade import App\nx = ().__class__\nclass Probe(App):\n    pass\n"
    with pytest.raises(LoadFailed, match="__class__"):
        AppHarness.from_dir(write_app(tmp_path, source=src))


def test_runtime_refusals_reach_the_test(tmp_path):
    src = ("from stockade import App\nclass Probe(App):\n"
           "    def on_livechat_room_started(self, ctx, event):\n"
           "        return '{0}'.format(1)\n")
    h = AppHarness.from_dir(write_app(tmp_path, source=src))
    with pytest.raises(SandboxViolation, match="format"):
        h.fire("livechat.room_started", {})


def test_an_entry_class_that_is_no_app_is_refused(tmp_path):
    src = "class Probe:\n    pass\n"
    with pytest.raises(LoadFailed, match="not a subclass"):
        AppHarness.from_dir(write_app(tmp_path, source=src))


def test_apps_may_import_their_own_modules(tmp_path):
    src = ("from stockade import App\nimport rules\nclass Probe(App):\n"
           "    def on_livechat_room_started(self, ctx, event):\n"
           "        return rules.answer()\n")
    app = write_app(tmp_path, source=src,
                    extra_modules={"rules": "def answer():\n    return 42\n"})
    assert AppHarness.from_dir(app).fire("livechat.room_started", {}) == 42


def test_a_missing_or_broken_manifest_is_a_harness_error(tmp_path):
    with pytest.raises(HarnessError, match=r"no app\.toml"):
        AppHarness.from_dir(tmp_path)
    (tmp_path / "app.toml").write_text("id = ")
    with pytest.raises(HarnessError, match="not valid TOML"):
        AppHarness.from_dir(tmp_path)


# -- events --------------------------------------------------------------------------------

def test_fire_passes_settings_and_returns_the_result(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path), settings={"mode": "b"})
    assert h.fire("livechat.room_started", {}) == {
        "settings": {"mode": "b", "limit": 3}, "app_id": "probe"}


def test_fire_refuses_what_the_host_would_never_deliver(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path))
    with pytest.raises(HarnessError, match="does not list"):
        h.fire("message.sent", {})
    with pytest.raises(HarnessError, match="unknown event"):
        h.fire("room.exploded", {})
    h2 = AppHarness.from_dir(write_app(tmp_path / "b", permissions=("livechat.read",
                                                                      "persistence")),
                             grants={"persistence"})
    with pytest.raises(HarnessError, match=r"livechat\.read"):
        h2.fire("livechat.room_started", {})


def test_a_declared_event_without_a_handler_is_a_harness_error(tmp_path):
    app = write_app(tmp_path, permissions=("livechat.read",),
                    events=("livechat.room_started", "livechat.room_closed"))
    with pytest.raises(HarnessError, match="on_livechat_room_closed"):
        AppHarness.from_dir(app).fire("livechat.room_closed", {})


def test_deliver_sends_emitted_events_and_stops_loops(tmp_path):
    app = write_app(tmp_path, permissions=("messages.read", "messages.send"),
                    events=("message.sent",))
    h = AppHarness.from_dir(app)
    h.make_agent(h.app_user["id"])
    room_id = h.start_room(h.add_visitor()["id"])["room"]["id"]
    h.visitor_says(room_id, "hello")
    assert [n for n, _ in h.deliver()] == ["message.sent"]  # room events are not subscribed
    h.visitor_says(room_id, "echo")  # the probe echoes its own echo: a loop
    with pytest.raises(HarnessError, match="event loop"):
        h.deliver(limit=10)


def test_handler_output_and_prints(tmp_path):
    src = ("from stockade import App\nclass Probe(App):\n"
           "    def on_livechat_room_started(self, ctx, event):\n"
           "        print('hi', event['room'])\n        return None\n")
    h = AppHarness.from_dir(write_app(tmp_path, source=src))
    h.fire("livechat.room_started", {"room": 1})  # a key the event has (test_harness_payload_keys)
    assert "".join(h.logs) == "hi 1\n"


# -- lifecycle and settings --------------------------------------------------------------------

def test_lifecycle_hooks_are_optional_and_uninstall_drops_data(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path, permissions=("livechat.read", "persistence")))
    assert h.install() == "installed"
    assert h.stored("installed") is True
    assert h.enable() is None  # no on_enable: nothing happens
    h.uninstall()
    assert h.server.store == {}


def test_settings_are_typed(tmp_path):
    app = write_app(tmp_path)
    with pytest.raises(HarnessError, match="unknown setting"):
        AppHarness.from_dir(app, settings={"colour": "red"})
    with pytest.raises(HarnessError, match="mode"):
        AppHarness.from_dir(app, settings={"mode": "c"})
    with pytest.raises(HarnessError, match="limit"):
        AppHarness.from_dir(app, settings={"limit": "3"})
    h = AppHarness.from_dir(app)
    h.change_settings(limit=9)
    assert h.ctx.settings["limit"] == 9


# -- the fake server's livechat behaviour -------------------------------------------------------

def test_routing_take_transfer_and_close_emit_events(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path, permissions=("livechat.read",
                                                               "livechat.write")))
    h.add_department("Sales")
    ann = h.add_user("ann", agent=True, status="not-available")
    bob = h.add_user("bob", agent=True, status="not-available", departments=["Sales"])
    room_id = h.start_room(h.add_visitor()["id"])["room"]["id"]
    assert h.server.rooms[room_id]["served_by"] is None  # nobody routable: queued
    h.ctx.livechat.take_room(room_id, ann["id"])
    with pytest.raises(Conflict, match="served by another agent"):
        h.ctx.livechat.take_room(room_id, bob["id"])
    with pytest.raises(Conflict, match="no agent available"):
        h.ctx.livechat.transfer_room(room_id, department="sales")
    h.server.livechat_set_agent_status(bob["id"], "available")
    room = h.ctx.livechat.transfer_room(room_id, department="sales")
    assert room["served_by"] == bob["id"] and room["department_id"] is not None
    h.ctx.livechat.close_room(room_id, comment="done")
    with pytest.raises(Conflict, match="closed"):
        h.ctx.livechat.close_room(room_id)
    assert [n for n, _ in h.emitted] == [
        "livechat.room_started", "livechat.agent_assigned", "livechat.agent_unassigned",
        "livechat.agent_assigned", "livechat.room_transferred", "livechat.room_closed"]
    closed = h.emitted_named("livechat.room_closed")[0]
    assert closed["closed_by"] == {"type": "user", "id": h.app_user["id"], "app_id": "probe"}


def test_agent_display_only_in_rooms_the_app_user_serves(tmp_path):
    h = AppHarness.from_dir(write_app(tmp_path, permissions=(
        "livechat.read", "livechat.write", "livechat.agent-display")))
    h.make_agent(h.app_user["id"], status="not-available")
    room_id = h.start_room(h.add_visitor()["id"])["room"]["id"]
    with pytest.raises(PermissionDenied, match="serves"):
        h.ctx.livechat.set_agent_display(room_id, "Eve")
    h.ctx.livechat.take_room(room_id, h.app_user["id"])
    room = h.ctx.livechat.set_agent_display(room_id, "Eve", "https://x.example/e.png")
    assert room["agent_display"] == {"name": "Eve", "avatar_url": "https://x.example/e.png"}


# -- the example apps' manifests satisfy the host's manifest model ------------------------------

@pytest.mark.parametrize("app", ["agent-sync", "proxy-agent", "chatbot-handover", "crm-sync"])
def test_example_manifests_are_valid_for_the_host(app):
    manifest = parse_manifest((EXAMPLES / app / "app.toml").read_bytes())
    assert manifest.id == app
    assert all(len(p.reason) >= 20 for p in manifest.permission)
