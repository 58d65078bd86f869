"""Attacks on the REST bridge (issue 19, "The REST bridge is a capability, not an admin key").

Each runs through a real host: a confined child calls `ctx.rest.call` on routes a policy lists,
and the gate must decide each route as the bridge action it amounts to (own users, quotas, seat
ceiling, admin-class roles), act as the app's own user, and audit the route and the server's
real status. Before this fix every one of these passed through as the operator's service
identity with its full powers."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apphelp import install, write_app, write_policy
from gatehelp import change_before

from host.home import Home
from host.runtime import Host, HostConfig
from host.server.errors import NotFound
from host.server.principals import SYSTEM

CALLER = '''
from stockade import App, StockadeError, QuotaExceeded, PermissionDenied, InvalidArgument

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for method, route, body in event["calls"]:
            try:
                r = ctx.rest.call(method, route, body)
                out.append([r["status"], r["body"].get("errorType") or r["body"].get("success")])
            except QuotaExceeded as e:
                out.append(["refused", "QuotaExceeded", str(e)])
            except PermissionDenied as e:
                out.append(["refused", "PermissionDenied", str(e)])
            except InvalidArgument as e:
                out.append(["refused", "InvalidArgument", str(e)])
            except StockadeError as e:
                out.append(["refused", "StockadeError", str(e)])
        return out
'''

POLICY = '''
schema = 1
name = "restattack"
[workspace]
max_active_app_users = 2
[[rule]]
id = "rest-routes"
effect = "permit"
apps = ["caller"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/users.update", "POST /api/v1/users.setActiveStatus",
               "POST /api/v1/users.create", "POST /api/v1/roles.addUserToRole",
               "GET /api/v1/livechat/users/agent", "GET /api/v1/roles.list"]
rest_fields = []
[[rule]]
id = "rest-department"
effect = "permit"
apps = ["caller"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/livechat/department"]
rest_fields = ["department", "agents"]
[[rule]]
id = "rest-visitor"
effect = "permit"
apps = ["caller"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/livechat/visitor", "GET /api/v1/livechat/visitors.info",
               "POST /api/v1/livechat/room.close"]
rest_fields = ["visitor", "rid", "token"]
[[rule]]
id = "caller-read"
effect = "permit"
apps = ["caller"]
actions = ["livechat.read"]
[[rule]]
id = "caller-create"
effect = "permit"
apps = ["caller"]
actions = ["users.create"]
[rule.when]
user_types = ["bot", "user"]
[[rule]]
id = "caller-fields"
effect = "permit"
apps = ["caller"]
actions = ["users.set_custom_fields"]
[rule.when]
custom_field_keys = ["externalId"]
[[rule]]
id = "caller-deactivate"
effect = "permit"
apps = ["caller"]
actions = ["users.deactivate"]
[[rule]]
id = "caller-roles"
effect = "permit"
apps = ["caller"]
actions = ["roles.assign"]
[rule.when]
roles = ["bot"]
[[quota]]
id = "caller-create-rate"
apps = ["caller"]
action = "users.create"
limit = 1
window = "1h"
[[quota]]
id = "caller-deactivate-rate"
apps = ["caller"]
action = "users.deactivate"
limit = 10
window = "1h"
[[quota]]
id = "caller-roles-rate"
apps = ["caller"]
action = "roles.assign"
limit = 10
window = "1h"
'''

# users.read: `GET livechat/users/agent` (no bridge action) reads agents' user records, which
# needs it as the bridge's reads of users do (`policies.restmap.READS`).
PERMS = ["livechat.read", "server.rest", "users.create", "users.update", "users.deactivate",
         "roles.assign", "users.read"]


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[Host]:
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "restattack", POLICY)
    install(home, write_app(tmp_path / "apps", "caller", PERMS, ["livechat.room_started"],
                            CALLER))
    with Host(home, config=HostConfig()) as h:
        yield h


def _run(h: Host, calls: list[list[Any]]) -> list[Any]:
    runner = next(iter(h.runners.values()))
    out: list[Any] = runner.submit("livechat.room_started", {"calls": calls}, 15.0).result(30)
    return out


def _rest_records(h: Host) -> list[dict[str, Any]]:
    return [e.body for e in h.ledger.audit.tail(500) if e.body.get("route")]


def test_rest_cannot_rewrite_a_humans_custom_field(host: Host) -> None:
    alice = host.server.users_create(SYSTEM, "alice", "Alice", "user",
                                     custom_fields={"externalId": "human-1"})
    res = _run(host, [["POST", "/api/v1/users.update",
                       {"userId": alice["id"], "data": {"customFields": {"externalId": "x"}}}]])
    assert res[0][0] == "refused" and "own users only" in res[0][2]
    assert host.server.users_get(SYSTEM, alice["id"])["custom_fields"] == {"externalId": "human-1"}
    denial = _rest_records(host)[-1]
    assert denial["allowed"] is False and denial["action"] == "users.set_custom_fields"
    assert denial["route"] == "POST /api/v1/users.update"


def test_rest_cannot_deactivate_the_admin(host: Host) -> None:
    boss = host.server.users_create(SYSTEM, "boss", "Boss", "user", roles=["admin"])
    res = _run(host, [
        ["POST", "/api/v1/users.setActiveStatus", {"userId": boss["id"], "activeStatus": False}],
        ["POST", "/api/v1/users.update", {"userId": boss["id"], "data": {"active": False}}],
    ])
    assert [r[0] for r in res] == ["refused", "refused"]
    # the guardrail, before any rule: no policy (any_user included) deactivates the admin
    assert all("privileged role" in r[2] and "[guardrail]" in r[2] for r in res)
    assert host.server.users_get(SYSTEM, boss["id"])["active"] is True


def test_rest_users_create_admits_exactly_what_the_bridge_would(host: Host) -> None:
    calls = [["POST", "/api/v1/users.create", {"username": f"ext-{i}", "name": f"E {i}",
                                               "type": "bot"}] for i in range(5)]
    res = _run(host, calls)
    assert res[0] == [200, True]
    assert [r[:2] for r in res[1:]] == [["refused", "QuotaExceeded"]] * 4
    assert host.server.count_users_created_by("caller") == 1
    # the type, role and username rules of users.create apply: no admin at creation
    res = _run(host, [["POST", "/api/v1/users.create",
                       {"username": "ext-x", "name": "X", "type": "bot", "roles": ["admin"]}]])
    assert res[0][0] == "refused" and "admin-class" in res[0][2]
    assert host.server.count_users_created_by("caller") == 1
    ok = [r for r in _rest_records(host) if r["kind"] == "outcome"]
    assert len(ok) == 1 and ok[0]["status"] == 200 and ok[0]["action"] == "users.create"


def test_rest_cannot_assign_admin(host: Host) -> None:
    bot = host.server.users_create(SYSTEM, "bot-1", "Bot", "bot")
    me = host.installs.get(next(iter(host.runners.values())).install_id)
    assert me is not None and me.app_user_id
    res = _run(host, [
        ["POST", "/api/v1/roles.addUserToRole", {"roleName": "admin", "userId": bot["id"]}],
        ["POST", "/api/v1/roles.addUserToRole", {"roleName": "admin", "userId": me.app_user_id}],
        ["POST", "/api/v1/roles.addUserToRole", {"roleId": "admin", "username": "bot-1"}],
    ])
    assert all(r[0] == "refused" for r in res), res
    assert "admin-class" in res[1][2]
    assert "admin" not in host.server.users_get(SYSTEM, bot["id"])["roles"]
    assert "admin" not in host.server.users_get(SYSTEM, me.app_user_id)["roles"]


def test_a_server_403_is_audited_as_a_refusal_with_its_status(host: Host) -> None:
    # An unmapped route the policy lists (with its fields): it runs as the app's own user, who
    # holds no livechat-manager role, so the server answers 403.
    res = _run(host, [["GET", "/api/v1/livechat/users/agent", None],
                      ["GET", "/api/v1/roles.list", None]])
    assert res[0] == [403, "error-unauthorized"]
    assert res[1] == [200, True]
    outcomes = [r for r in _rest_records(host) if r["kind"] == "outcome"]
    refused, fine = outcomes[-2], outcomes[-1]
    assert refused["ok"] is False and refused["status"] == 403
    assert refused["code"] == "error-unauthorized"
    assert refused["route"] == "GET /api/v1/livechat/users/agent"
    assert fine["ok"] is True and fine["status"] == 200 and fine["code"] == "ok"
    decisions = [r for r in _rest_records(host) if r["kind"] == "decision"]
    assert decisions[-1]["route"] == "GET /api/v1/roles.list"
    assert decisions[-1]["action"] == "rest.call"
    # a mapped route the server refuses (the username is taken): Rocket.Chat's 400
    # error-field-unavailable, audited with the gate's own code, the unit refunded
    host.server.users_create(SYSTEM, "taken", "Taken", "user")
    res = _run(host, [["POST", "/api/v1/users.create",
                       {"username": "taken", "name": "T", "type": "bot"}]])
    assert res[0] == [400, "error-field-unavailable"]
    last = _rest_records(host)[-1]
    assert last["kind"] == "outcome" and last["ok"] is False and last["status"] == 400
    assert last["code"] == "conflict" and last["refunded"] is True
    assert last["action"] == "users.create" and last["route"] == "POST /api/v1/users.create"


def test_rest_cannot_move_agents_into_a_department(host: Host) -> None:
    """`POST livechat/department` with `agents` puts agents into a department: what
    livechat.add_department_agent does, for the app's own users only. Even with a policy that
    lists the route and the field and an app user allowed to manage departments, a human agent
    is never moved; the department alone may be made."""
    human = host.server.users_create(SYSTEM, "alice", "Alice", "user")
    host.server.livechat_add_agent(SYSTEM, human["id"])
    me = host.installs.get(next(iter(host.runners.values())).install_id)
    assert me is not None and me.app_user_id
    host.server.roles_assign(SYSTEM, me.app_user_id, "livechat-manager")  # the route's role
    res = _run(host, [
        ["POST", "/api/v1/livechat/department",
         {"department": {"name": "grab"}, "agents": [{"agentId": human["id"]}]}],
        ["POST", "/api/v1/livechat/department", {"department": {"name": "empty"}}],
    ])
    assert res[0] == [403, "error-unauthorized"], res
    assert res[1] == [200, True], res
    deps = {d["name"]: d["agents"] for d in host.server.list_departments()}
    assert deps == {"empty": []}
    refused = [r for r in _rest_records(host) if r["kind"] == "outcome"][-2]
    assert refused["ok"] is False and refused["status"] == 403
    assert refused["route"] == "POST /api/v1/livechat/department"


def test_rest_cannot_act_as_a_visitor_with_its_widget_token(host: Host) -> None:
    """A visitor's widget token is its credential, and `GET livechat/visitors.info` shows it
    (as Rocket.Chat does) to an app that may read visitors. `POST livechat/visitor` with that
    token rewrites the visitor (its e-mail, where transcripts go; its custom fields) as the
    visitor: refused whatever a policy lists, like every other route that acts as a visitor."""
    v = host.server.save_visitor("widget-token-42", "Vera", "vera@example.com",
                                 {"crm": "c-1"})
    room = host.server.visitor_start_room(v["id"])
    res = _run(host, [
        ["GET", "/api/v1/livechat/visitors.info", {"visitorId": v["id"]}],
        ["POST", "/api/v1/livechat/visitor",
         {"visitor": {"token": "widget-token-42", "email": "thief@example.net",
                      "customFields": {"crm": "c-666"}}}],
        ["POST", "/api/v1/livechat/visitor", {"visitor": {"token": "made-up-token-1"}}],
        # Rocket.Chat's widget route: the visitor closes its own room by its token
        ["POST", "/api/v1/livechat/room.close", {"rid": room["id"], "token": "widget-token-42"}],
    ])
    assert res[0] == [200, True], res
    assert [r[:2] for r in res[1:]] == [["refused", "PermissionDenied"]] * 3, res
    assert "acts as a visitor" in res[1][2] and "acts as a visitor" in res[3][2], res
    assert host.server.livechat_get_room(SYSTEM, room["id"])["open"] is True
    after = host.server.livechat_get_visitor(SYSTEM, v["id"])
    assert after["email"] == "vera@example.com" and after["custom_fields"] == {"crm": "c-1"}
    with pytest.raises(NotFound):
        host.server.get_visitor_by_token("made-up-token-1")
    denial = _rest_records(host)[-1]
    assert denial["allowed"] is False and denial["route"] == "POST /api/v1/livechat/room.close"


def test_another_identity_only_when_the_operator_names_it_at_consent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from typer.testing import CliRunner

    from host.cli.main import root
    from host.cli.output import err_console
    from host.clock import SystemClock
    from host.server.embedded import EmbeddedServer
    from host.server.personal_tokens import ensure_service_user

    home = Home(tmp_path / "home").ensure()
    write_policy(home, "restattack", POLICY.replace('"GET /api/v1/roles.list"',
                                                    '"GET /api/v1/roles.list", "GET /api/v1/me"'))
    install(home, write_app(tmp_path / "apps", "caller", PERMS, ["livechat.room_started"],
                            CALLER))
    ensure_service_user(EmbeddedServer(home.server_db, SystemClock()), "svc")

    def cli(*args: str) -> tuple[int, str]:
        buf = io.StringIO()
        monkeypatch.setattr(err_console, "_file", buf)
        monkeypatch.setattr(err_console, "_width", 1000)  # one line per disclosure row
        r = CliRunner().invoke(root, ["--home", str(home.root), *args])
        return r.exit_code, r.stdout + buf.getvalue()

    grants = [x for p in PERMS for x in ("--grant", p)]
    code, out = cli("app", "consent", "caller", *grants, "--rest-as", "nobody-here")
    assert code != 0 and "no such server user" in out
    with Host(home, config=HostConfig()) as h:
        res = _run(h, [["GET", "/api/v1/me", None], ["GET", "/api/v1/livechat/users/agent", None]])
        assert res[1] == [403, "error-unauthorized"]  # the app's own user holds no manager role
    code, out = cli("app", "consent", "caller", *grants, "--rest-as", "svc")
    assert code == 0, out
    flat = " ".join(out.replace("│", " ").split())  # the disclosure table wraps its cells
    assert "server user 'svc'" in flat and "ALL of that user's server roles" in flat
    with Host(home, config=HostConfig()) as h:
        res = _run(h, [["GET", "/api/v1/livechat/users/agent", None]])
        assert res[0] == [200, True]  # the named identity's roles, because the operator said so
        decision = [r for r in _rest_records(h) if r["kind"] == "decision"][-1]
        assert decision["actor"] == "user svc"
        named = [e.body for e in h.ledger.audit.tail(500)
                 if e.body.get("event") == "rest_identity"]
        assert named and named[-1]["actor"] == "svc" and named[-1]["app_id"] == "caller"
        # a mapped route is still its bridge action, whoever the named identity is
        boss = h.server.users_create(SYSTEM, "boss", "Boss", "user", roles=["admin"])
        res = _run(h, [["POST", "/api/v1/users.setActiveStatus",
                        {"userId": boss["id"], "activeStatus": False}]])
        assert res[0][0] == "refused" and "privileged role" in res[0][2]
    code, out = cli("app", "consent", "caller", *grants, "--rest-as", "app")
    assert code == 0 and "(app.caller)" in " ".join(out.replace("│", " ").split())
    from host.apps.installs import InstallStore

    with InstallStore(home.host_db) as store:
        rec = store.by_app("caller")
        assert rec is not None and rec.rest_as is None


def test_install_can_name_the_rest_identity_and_it_is_signed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sqlite3

    from typer.testing import CliRunner

    from host.apps.consent import verify_install
    from host.apps.installs import InstallStore
    from host.cli.main import root
    from host.cli.output import err_console
    from host.clock import SystemClock
    from host.keys.keyring import Keyring
    from host.server.embedded import EmbeddedServer
    from host.server.personal_tokens import ensure_service_user

    home = Home(tmp_path / "home").ensure()
    ensure_service_user(EmbeddedServer(home.server_db, SystemClock()), "svc")
    folder = write_app(tmp_path / "apps", "caller", PERMS, ["livechat.room_started"], CALLER)
    monkeypatch.setattr(err_console, "_file", io.StringIO())
    grants = [x for p in PERMS for x in ("--grant", p)]
    r = CliRunner().invoke(root, ["--home", str(home.root), "app", "install", str(folder),
                                  "--allow-unsigned", "--rest-as", "svc", *grants])
    assert r.exit_code == 0, r.output
    with InstallStore(home.host_db) as store:
        rec = store.by_app("caller")
        assert rec is not None and rec.rest_as == "svc"
        assert verify_install(rec, store, Keyring.open(home.keys_dir)).ok
        # the identity lives only in the signed consent: rewriting it there is tampering
        with sqlite3.connect(home.host_db) as db:
            db.execute("UPDATE consent_records SET payload = replace(payload, '\"svc\"', "
                       "'\"boss\"')")
        forged = store.by_app("caller")
        assert forged is not None and forged.rest_as == "boss"
        assert not verify_install(forged, store, Keyring.open(home.keys_dir)).ok


@pytest.mark.parametrize("route", [
    ["POST", "/api/v1/users.create", {"username": "late", "name": "Late", "type": "bot"}],
    ["GET", "/api/v1/roles.list", {}],
], ids=["mapped", "unmapped"])
def test_a_disable_committed_before_a_routes_admission_refuses_it(
        host: Host, monkeypatch: pytest.MonkeyPatch, route: list[Any]) -> None:
    """The route is decided, then the operator's disable commits from another process before
    its admission: the admission sees it, the route is decided again and refused, and nothing
    reaches the server."""
    assert _run(host, [["GET", "/api/v1/roles.list", {}]])[0][0] == 200  # cached, allowed
    iid = next(iter(host.runners.values())).install_id
    disabled = change_before(monkeypatch, host.ledger, "admit", host.home,
                             lambda other: other.set_enabled(iid, False, "operator disabled"))
    before = len([r for r in _rest_records(host) if r["kind"] == "outcome"])
    res = _run(host, [route])
    assert disabled and res[0][:2] == ["refused", "PermissionDenied"], res
    assert "disabled" in res[0][2]
    assert host.server.count_users_created_by("caller") == 0
    assert len([r for r in _rest_records(host) if r["kind"] == "outcome"]) == before
    assert _rest_records(host)[-1]["allowed"] is False
