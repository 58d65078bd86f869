"""The REST routes find an agent by asking for it, never by scanning the capped agent list:
the 501st agent keeps its queue, its status toggle and its role sync."""
from __future__ import annotations

from typing import Any

from host.server import SYSTEM, EmbeddedServer, livechat, users
from host.server.limits import MAX_LIST
from host.server.rest import RestDispatcher
from host.server.shapes import User


def _filler_agents(server: EmbeddedServer, n: int = MAX_LIST) -> None:
    """`n` agents whose usernames sort before any test user's (`a000`...)."""
    with server.db.write() as c:
        for i in range(n):
            u = users.create(c, 0.0, username=f"a{i:03d}", name=f"A{i}", type="user",
                             email=None, roles=(), custom_fields={}, created_by_app=None)
            livechat.add_agent(c, 0.0, u["id"])


def _staff(server: EmbeddedServer, name: str, *roles: str) -> User:
    return server.users_create(SYSTEM, name, name.title(), "user", roles=list(roles))


def _ids(body: dict[str, Any], key: str) -> set[str]:
    return {x["_id"] for x in body[key]}


def test_the_501st_agent_keeps_its_queue_status_and_role_sync(server: EmbeddedServer) -> None:
    _filler_agents(server)
    admin = _staff(server, "root-admin", "admin")
    zed = _staff(server, "zed")
    server.livechat_add_agent(SYSTEM, zed["id"])
    server.add_department("Sales", [zed["id"]])
    queued = [server.visitor_start_room(server.save_visitor(f"widget-token-{i}")["id"], "Sales")
              for i in range(2)]
    assert all(r["served_by"] is None for r in queued)
    rest = RestDispatcher(server)
    st, body = rest.call(zed["id"], "GET", "livechat/inquiries.list")
    assert st == 200 and _ids(body, "inquiries") == {r["id"] for r in queued}, body
    st, body = rest.call(zed["id"], "POST", "livechat/room.take", body={"roomId": queued[0]["id"]})
    assert st == 200 and body["room"]["servedBy"]["_id"] == zed["id"], body
    st, body = rest.call(admin["id"], "GET", f"livechat/users/agent/{zed['id']}")
    assert st == 200 and body["user"]["_id"] == zed["id"], body
    st, body = rest.call(zed["id"], "POST", "livechat/agent.status", body={})
    assert st == 200 and body["status"] == "available", body
    server.set_agent_status(zed["id"], "not-available")
    st, _ = rest.call(admin["id"], "POST", "roles.removeUserFromRole",
                      body={"roleName": "livechat-agent", "userId": zed["id"]})
    assert st == 200
    assert zed["id"] not in {a["user_id"] for a in livechat.list_agents(server.db.conn())}
    assert server.db.conn().execute("SELECT 1 FROM agents WHERE user_id = ?",
                                    (zed["id"],)).fetchone() is None
    st, _ = rest.call(admin["id"], "POST", "roles.addUserToRole",
                      body={"roleName": "livechat-agent", "userId": zed["id"]})
    assert st == 200
    assert server.db.conn().execute("SELECT 1 FROM agents WHERE user_id = ?",
                                    (zed["id"],)).fetchone() is not None
