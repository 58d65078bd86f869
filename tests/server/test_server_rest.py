from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from servehelp import in_thread
from srvhelp import op

from host.server import SYSTEM, Caller, EmbeddedServer
from host.server.personal_tokens import ensure_service_user, mint
from host.server.rest import MAX_BODY_BYTES, RestDispatcher, create_app


@pytest.fixture
def svc(server: EmbeddedServer) -> tuple[str, str]:
    user, token = ensure_service_user(server, "svc")
    return user["id"], token


@pytest.fixture
def base_url(server: EmbeddedServer) -> Iterator[str]:
    with in_thread(uvicorn.Config(create_app(server), host="127.0.0.1", port=0,
                                  log_level="warning", lifespan="off")) as url:
        yield url


@pytest.fixture
def client(base_url: str, svc: tuple[str, str]) -> Iterator[httpx.Client]:
    uid, token = svc
    with httpx.Client(base_url=base_url, headers={"X-User-Id": uid, "X-Auth-Token": token},
                      timeout=10) as c:
        yield c


@pytest.fixture
def rest(server: EmbeddedServer) -> RestDispatcher:
    return RestDispatcher(server)


def test_http_auth(base_url: str, svc: tuple[str, str]) -> None:
    uid, token = svc
    with httpx.Client(base_url=base_url) as c:
        info = c.get("/api/v1/info")
        assert info.status_code == 200 and info.json()["success"] is True
        r = c.get("/api/v1/me")
        assert r.status_code == 401
        # Rocket.Chat's one 401 body (the OpenAPI's shared authorizationError response)
        assert r.json() == {"status": "error", "message": "You must be logged in to do this."}
        bad = c.get("/api/v1/me", headers={"X-User-Id": uid, "X-Auth-Token": token + "x"})
        assert bad.status_code == 401
        wrong_user = c.get("/api/v1/me", headers={"X-User-Id": "someoneElse", "X-Auth-Token": token})
        assert wrong_user.status_code == 401
        ok = c.get("/api/v1/me", headers={"X-User-Id": uid, "X-Auth-Token": token})
        assert ok.status_code == 200 and ok.json()["username"] == "svc"


def test_http_user_lifecycle(client: httpx.Client) -> None:
    r = client.post("/api/v1/users.create", json={
        "username": "jdoe", "name": "J Doe", "email": "j@example.org", "password": "correct horse",
        "customFields": {"crmId": "42"},
    })
    assert r.status_code == 200, r.text
    user = r.json()["user"]
    assert r.json()["success"] is True and user["customFields"] == {"crmId": "42"}
    assert user["emails"] == [{"address": "j@example.org", "verified": False}]
    assert user["createdByApp"] is None
    dup = client.post("/api/v1/users.create", json={"username": "JDOE", "name": "x"})
    assert dup.status_code == 400 and dup.json()["errorType"] == "error-field-unavailable"
    info = client.get("/api/v1/users.info", params={"username": "jdoe"})
    assert info.json()["user"]["_id"] == user["_id"]
    missing = client.get("/api/v1/users.info", params={"userId": "nope"})
    # as Rocket.Chat answers it (OpenAPI users.info 400 "User not found": no errorType)
    assert missing.status_code == 400
    assert missing.json() == {"success": False, "error": "User not found."}
    upd = client.post("/api/v1/users.update",
                      json={"userId": user["_id"], "data": {"customFields": {"tier": "gold"}}})
    assert upd.json()["user"]["customFields"] == {"crmId": "42", "tier": "gold"}
    off = client.post("/api/v1/users.setActiveStatus",
                      json={"userId": user["_id"], "activeStatus": False})
    assert off.json() == {"user": {"_id": user["_id"], "active": False}, "success": True}
    roles = client.get("/api/v1/roles.list").json()["roles"]
    assert {r["name"] for r in roles if r["protected"]} >= {"admin", "livechat-manager"}
    add = client.post("/api/v1/roles.addUserToRole",
                      json={"roleName": "livechat-agent", "username": "jdoe"})
    assert add.status_code == 200 and add.json()["role"]["name"] == "livechat-agent"
    bad = client.post("/api/v1/users.create", json={"username": "x y", "name": "n"})
    assert bad.status_code == 400 and bad.json()["errorType"] == "invalid-params"


def test_http_body_limits_and_bad_json(client: httpx.Client) -> None:
    big = client.post("/api/v1/users.create", content=b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}",
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    bad = client.post("/api/v1/users.create", content=b"{not json",
                      headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["success"] is False
    arr = client.post("/api/v1/users.create", json=[1, 2])
    assert arr.status_code == 400
    nowhere = client.get("/api/v1/no.such.route")
    assert nowhere.status_code == 404


def test_http_livechat_flow(client: httpx.Client, server: EmbeddedServer) -> None:
    agent = client.post("/api/v1/users.create", json={"username": "agent1", "name": "Agent"})
    aid = agent.json()["user"]["_id"]
    assert client.post("/api/v1/livechat/users/agent", json={"username": "agent1"}).status_code \
        == 200
    st = client.post("/api/v1/livechat/agent.status", json={"agentId": aid, "status": "available"})
    assert st.json() == {"status": "available", "success": True}
    v = client.post("/api/v1/livechat/visitor", json={"visitor": {"token": "widget-token-1",
                                                                  "name": "Vic"}})
    assert v.status_code == 200 and v.json()["visitor"]["token"] == "widget-token-1"
    room = client.post("/api/v1/livechat/room", json={"token": "widget-token-1"}).json()["room"]
    assert room["servedBy"] == {"_id": aid, "username": "agent1"}
    assert room["t"] == "l" and room["open"] is True and room["v"]["token"] == "widget-token-1"
    msg = client.post("/api/v1/livechat/message",
                      json={"token": "widget-token-1", "rid": room["_id"], "msg": "hello"})
    assert msg.json()["message"]["u"]["type"] == "visitor"
    sent = client.post("/api/v1/chat.sendMessage",
                       json={"message": {"rid": room["_id"], "msg": "hi, svc here"}})
    assert sent.status_code == 200 and sent.json()["message"]["u"]["username"] == "svc"
    msgs = client.get("/api/v1/channels.messages", params={"roomId": room["_id"]}).json()
    assert [m["msg"] for m in msgs["messages"]] == ["hi, svc here", "hello"]
    listed = client.get("/api/v1/livechat/rooms", params={"open": "true"}).json()
    assert [r["_id"] for r in listed["rooms"]] == [room["_id"]]
    closed = client.post("/api/v1/livechat/room.closeByUser", json={"rid": room["_id"], "comment": "ok"})
    assert closed.json() == {"rid": room["_id"], "comment": "ok", "success": True}
    again = client.post("/api/v1/livechat/room.closeByUser", json={"rid": room["_id"]})
    # as Rocket.Chat answers it (OpenAPI closeByUser 400 "Room already closed": no errorType)
    assert again.status_code == 400
    assert again.json() == {"success": False, "error": "error-room-already-closed"}
    info = client.get("/api/v1/livechat/room.info", params={"roomId": room["_id"]}).json()
    assert info["room"]["open"] is False and info["room"]["closingMessage"] == "ok"
    gone = client.delete(f"/api/v1/livechat/users/agent/{aid}")
    assert gone.status_code == 200
    gone_again = client.delete(f"/api/v1/livechat/users/agent/{aid}")
    assert gone_again.status_code == 400 and gone_again.json()["errorType"] == "error-invalid-user"


def test_roles_gate_routes(server: EmbeddedServer, base_url: str) -> None:
    plain = server.users_create(SYSTEM, "plain", "Plain", "user")
    token = mint(server.db, plain["id"], "t", 0.0)
    with httpx.Client(base_url=base_url,
                      headers={"X-User-Id": plain["id"], "X-Auth-Token": token}) as c:
        assert c.get("/api/v1/me").status_code == 200
        r = c.post("/api/v1/users.create", json={"username": "sneaky", "name": "S"})
        assert r.status_code == 403 and r.json()["errorType"] == "error-unauthorized"
        assert c.get("/api/v1/livechat/rooms").status_code == 403
    server.users_deactivate(SYSTEM, plain["id"])
    with httpx.Client(base_url=base_url,
                      headers={"X-User-Id": plain["id"], "X-Auth-Token": token}) as c:
        assert c.get("/api/v1/me").status_code == 401


def test_dispatcher_matches_http(client: httpx.Client, rest: RestDispatcher,
                                 svc: tuple[str, str]) -> None:
    uid, _ = svc
    created = client.post("/api/v1/users.create", json={"username": "same", "name": "Same"})
    target = created.json()["user"]["_id"]
    for method, route, query, body in [
        ("GET", "/api/v1/users.info", {"userId": target}, None),
        ("GET", "/api/v1/users.info", {"userId": "missing"}, None),
        ("GET", "/api/v1/roles.list", {}, None),
        ("GET", "/api/v1/info", {}, None),
        ("POST", "/api/v1/users.create", {}, {"username": "same", "name": "Dup"}),
        ("POST", "/api/v1/users.create", {}, {"username": "?", "name": "Bad"}),
        ("GET", "/api/v1/livechat/room.info", {"roomId": "nope"}, None),
    ]:
        http = client.request(method, route, params=query, json=body)
        status, payload = rest.call(uid, method, route, query, body)
        assert (status, payload) == (http.status_code, http.json()), route
    # Query strings inside the route are understood too (the bridge passes one string).
    status, payload = rest.call(uid, "GET", f"users.info?userId={target}", {}, None)
    assert status == 200 and payload["user"]["_id"] == target
    assert rest.call(None, "GET", "me", {}, None)[0] == 401
    assert rest.call("nobody", "GET", "me", {}, None)[0] == 401


def test_dispatcher_with_app_caller(server: EmbeddedServer, rest: RestDispatcher,
                                    svc: tuple[str, str], app: Caller) -> None:
    uid, _ = svc
    oid = op()
    status, payload = rest.call(uid, "POST", "users.create", {},
                                {"username": "viaapp", "name": "V", "type": "bot"},
                                caller=app, op_id=oid)
    assert status == 200 and payload["user"]["createdByApp"] == "agent-sync"
    assert server.was_applied(oid)
    # Retried with the same op_id: same answer, one user.
    assert rest.call(uid, "POST", "users.create", {},
                     {"username": "viaapp", "name": "V", "type": "bot"},
                     caller=app, op_id=oid) == (status, payload)
    assert server.count_users_created_by("agent-sync") == 1
    # Even through REST as an admin identity, an app never reaches privileged roles.
    status, payload = rest.call(uid, "POST", "roles.addUserToRole", {},
                                {"roleName": "admin", "userId": payload["user"]["_id"]},
                                caller=app, op_id=op())
    assert status == 403 and payload["errorType"] == "error-unauthorized"
    # An app's write through REST needs an op_id.
    status, payload = rest.call(uid, "POST", "users.create", {},
                                {"username": "noop1", "name": "N"}, caller=app)
    assert status == 400 and "op_id" in payload["error"]
    big = {"username": "big", "name": "B", "customFields": {"k": "v" * 70_000}}
    assert rest.call(uid, "POST", "users.create", {}, big)[0] == 413


def test_an_app_creating_a_department_moves_no_agents_into_it(
        server: EmbeddedServer, rest: RestDispatcher, svc: tuple[str, str], app: Caller) -> None:
    """`livechat/department` with `agents`, run for an app (the REST bridge's unmapped path, as
    an admin identity the operator named), is 403 and creates nothing: putting agents into a
    department is `livechat.add_department_agent`, the app's own users only. Without agents it
    runs; the operator's own call still fills the department."""
    uid, _ = svc
    human = server.users_create(SYSTEM, "alice", "Alice", "user")
    server.livechat_add_agent(SYSTEM, human["id"])
    body = {"department": {"name": "app-dep"}, "agents": [{"agentId": human["id"]}]}
    status, out = rest.call(uid, "POST", "livechat/department", {}, body, caller=app,
                            op_id=op())
    assert status == 403 and "add_department_agent" in out["error"], out
    assert [d["name"] for d in server.list_departments()] == []
    status, out = rest.call(uid, "POST", "livechat/department", {},
                            {"department": {"name": "app-dep"}, "agents": []}, caller=app,
                            op_id=op())
    assert status == 200 and out["agents"] == [], out
    status, out = rest.call(uid, "POST", "livechat/department", {},
                            {**body, "department": {"name": "ops-dep"}})
    assert status == 200 and [a["agentId"] for a in out["agents"]] == [human["id"]]


def test_departments_and_their_agents_are_shaped_as_rocket_chat_shapes_them(
        rest: RestDispatcher, svc: tuple[str, str], server: EmbeddedServer) -> None:
    """The list carries `numAgents`, never the agents; `livechat/department/{_id}` has them
    beside the department; an agent's document names no departments, which
    `livechat/agents/{agentId}/departments` lists (the OpenAPI's shapes: a list with agents hid
    the remote adapter's reading of none)."""
    uid, _ = svc
    human = server.users_create(SYSTEM, "dana", "Dana", "user")
    server.livechat_add_agent(SYSTEM, human["id"])
    dep = server.add_department("Support", [human["id"]])
    status, out = rest.call(uid, "GET", "livechat/department")
    assert status == 200 and out["departments"] == [
        {"_id": dep["id"], "name": "Support", "enabled": True, "numAgents": 1}]
    status, out = rest.call(uid, "GET", f"livechat/department/{dep['id']}")
    assert status == 200 and out["department"]["_id"] == dep["id"]
    assert [(a["agentId"], a["username"]) for a in out["agents"]] == [(human["id"], "dana")]
    assert rest.call(uid, "GET", "livechat/department/nope")[0] == 400
    status, out = rest.call(uid, "GET", f"livechat/users/agent/{human['id']}")
    assert status == 200 and "departments" not in out["user"]
    status, out = rest.call(uid, "GET", f"livechat/agents/{human['id']}/departments")
    assert status == 200 and [d["departmentId"] for d in out["departments"]] == [dep["id"]]


def test_room_close_is_the_visitors_route(base_url: str, client: httpx.Client,
                                          server: EmbeddedServer) -> None:
    """POST livechat/room.close {rid, token} is Rocket.Chat's widget route: the visitor's token
    is the credential, no staff sign-in (it was staff-only: a widget's close was a 401). A
    token closes only its own visitor's room; staff close with livechat/room.closeByUser."""
    for tok in ("widget-close-token-1", "widget-close-token-2"):
        httpx.post(f"{base_url}/api/v1/livechat/visitor", json={"visitor": {"token": tok}})
    rid = httpx.get(f"{base_url}/api/v1/livechat/room",
                    params={"token": "widget-close-token-1"}).json()["room"]["_id"]
    other = httpx.post(f"{base_url}/api/v1/livechat/room.close",
                       json={"rid": rid, "token": "widget-close-token-2"})
    assert other.status_code == 400 and server.livechat_get_room(SYSTEM, rid)["open"]
    # staff headers are no credential here: the route wants the visitor's token
    assert client.post("/api/v1/livechat/room.close", json={"rid": rid}).status_code == 400
    closed = httpx.post(f"{base_url}/api/v1/livechat/room.close",
                        json={"rid": rid, "token": "widget-close-token-1"})
    assert closed.status_code == 200 and closed.json()["rid"] == rid, closed.text
    room = server.livechat_get_room(SYSTEM, rid)
    assert not room["open"] and room["closed_by"] is not None
    assert room["closed_by"]["type"] == "visitor"
