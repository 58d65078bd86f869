"""The `app.` usernames are the host's: each install's own user is `app.<id>` (review finding:
an app granted users.create made `app.<other>` first, and the other app's install half-wrote
and stopped `serve`). No app makes a user there: not through the bridge's users.create, not
through the REST bridge. Usernames are unique case-insensitively, so the namespace is too.
Operators keep the name (a host connected to this server as its workspace makes its apps'
users through an admin's users.create); users already there keep working."""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import build_rig, install_fuzz_app
from srvhelp import ADMIN, op

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.server import SYSTEM, Caller, EmbeddedServer, InvalidArgument
from host.server.personal_tokens import ensure_service_user
from host.server.rest import RestDispatcher

RESERVED = ["app.victim", "APP.victim", "App.Victim", "app.x", "app.agent-sync"]


@pytest.mark.parametrize("username", RESERVED)
def test_no_app_creates_a_user_in_the_app_namespace(
        server: EmbeddedServer, app: Caller, username: str) -> None:
    """Attack: an app takes the username of another app's own user."""
    with pytest.raises(InvalidArgument, match="reserved"):
        server.users_create(app, username, "Squat", "bot", op_id=op())
    assert server.count_users_created_by("agent-sync") == 0
    # the host's own user for the app is still made, under that name
    own = server.create_app_user("victim", "Victim")
    assert own["username"] == "app.victim" and own["type"] == "app"


def test_an_operator_may_still_use_the_name(server: EmbeddedServer) -> None:
    """What a connected host does on a workspace (its app users through users.create)."""
    for who, name in ((SYSTEM, "app.one"), (ADMIN, "APP.two")):
        assert server.users_create(who, name, "Ok", "bot")["username"] == name


def test_names_that_only_look_alike_are_free(server: EmbeddedServer, app: Caller) -> None:
    for name in ("apps.x", "app-x", "myapp.x", "app_x", "xapp.y"):
        assert server.users_create(app, name, "Ok", "bot", op_id=op())["username"] == name


def test_the_rest_bridge_refuses_it_too(server: EmbeddedServer, app: Caller) -> None:
    """Attack through REST: users.create run for the app (the REST bridge), whatever identity
    it runs as; the same route for the operator's own identity still works."""
    svc, _token = ensure_service_user(server, "svc")
    rest = RestDispatcher(server)
    for name in ("app.victim", "App.Victim"):
        status, out = rest.call(svc["id"], "POST", "users.create", {},
                                {"username": name, "name": "V", "type": "bot"},
                                caller=app, op_id=op())
        assert status == 400 and "reserved" in out["error"], out
    assert server.users_count_active_app_created() == 0
    status, out = rest.call(svc["id"], "POST", "users.create", {},
                            {"username": "app.victim", "name": "V", "type": "bot"})
    assert status == 200 and out["user"]["username"] == "app.victim", out


def test_a_user_already_in_the_namespace_keeps_working(server: EmbeddedServer) -> None:
    """A user made there before the reservation is read, changed and deactivated as before;
    only new names are refused."""
    with server.db.write() as c:
        c.execute("INSERT INTO users (id, type, username, username_cf, name, active,"
                  " created_by_app, app_id, created_at) VALUES ('olduser000000001', 'user',"
                  " 'app.legacy', 'app.legacy', 'Old', 1, NULL, NULL, 0)")
    u = server.users_get_by_username(SYSTEM, "APP.legacy")
    assert server.users_set_custom_fields(SYSTEM, u["id"], {"k": "v"})["custom_fields"] == \
        {"k": "v"}
    assert server.users_set_profile(SYSTEM, u["id"], "Renamed", None)["name"] == "Renamed"
    assert server.users_deactivate(SYSTEM, u["id"])["active"] is False


def test_the_bridge_refuses_it_through_the_gate(tmp_path: Path) -> None:
    """Attack through the real gate: an app granted users.create (bot users, role bot) asks
    for `app.<another app>`. Refused as a bad argument; nothing is created."""
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    rig = build_rig(home, SystemClock())
    for name in ("app.victim", "APP.VICTIM"):
        with pytest.raises(GateError) as refused:
            rig.gate.handle(rig.session, "users.create",
                            {"username": name, "name": "Squat", "type": "bot",
                             "roles": ["bot"]})
        assert refused.value.code == "invalid_argument" and "reserved" in str(refused.value)
    assert rig.server.count_users_created_by("fuzzapp") == 0
    made = rig.gate.handle(rig.session, "users.create",
                           {"username": "helper", "name": "H", "type": "bot", "roles": ["bot"]})
    assert made["username"] == "helper"
