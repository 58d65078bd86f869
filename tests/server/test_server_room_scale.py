"""The REST routes find an agent, a visitor's room and the queue by asking for them, never by
filtering a capped list: the 501st agent keeps its queue, its status toggle and its role sync;
a visitor with 500 newer conversations open gets its own room back; the longest-waiting visitor
stays in the queue; an agent still reads the visitor of its older room."""
from __future__ import annotations

from typing import Any

from host.server import SYSTEM, EmbeddedServer, livechat, users
from host.server.db import new_id
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


def _filler_rooms(server: EmbeddedServer, n: int, after: float,
                  served_by: str | None = None, open: bool = True) -> None:
    """`n` rooms of `n` visitors, all newer than `after`."""
    with server.db.write() as c:
        for i in range(n):
            vid = new_id()
            c.execute("INSERT INTO visitors (id, token, custom_fields, created_at, updated_at)"
                      " VALUES (?, ?, '{}', ?, ?)", (vid, f"filler-{vid}", after, after))
            c.execute("INSERT INTO rooms (id, visitor_id, served_by, open, custom_fields,"
                      " created_at) VALUES (?, ?, ?, ?, '{}', ?)",
                      (new_id(), vid, served_by, int(open), after + 1 + i))


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


def test_a_visitor_gets_its_room_back_behind_500_newer_ones(server: EmbeddedServer) -> None:
    rest = RestDispatcher(server)
    server.save_visitor("first-visitor", "Ann")
    st, body = rest.call(None, "GET", "livechat/room", query={"token": "first-visitor"})
    assert st == 200 and body["newRoom"] is True
    rid = body["room"]["_id"]
    _filler_rooms(server, MAX_LIST, server.clock.now())
    st, body = rest.call(None, "GET", "livechat/room", query={"token": "first-visitor"})
    assert st == 200 and body["room"]["_id"] == rid and body["newRoom"] is False, body


def test_the_longest_waiting_visitor_stays_in_the_queue(server: EmbeddedServer) -> None:
    boss = _staff(server, "boss", "livechat-manager")
    alice, bot = _staff(server, "alice"), _staff(server, "bot1")
    for u in (alice, bot):
        server.livechat_add_agent(SYSTEM, u["id"])
    server.add_department("Sales", [alice["id"]])
    oldest = server.visitor_start_room(server.save_visitor("oldest-visitor", "Ann")["id"],
                                       "Sales")
    assert oldest["served_by"] is None
    _filler_rooms(server, MAX_LIST, oldest["created_at"], served_by=bot["id"])
    rest = RestDispatcher(server)
    for who in (alice, boss):
        st, body = rest.call(who["id"], "GET", "livechat/inquiries.list", query={"count": "0"})
        assert st == 200 and _ids(body, "inquiries") == {oldest["id"]}, body
        st, body = rest.call(who["id"], "GET", "livechat/inquiries.list",
                             query={"department": oldest["department_id"] or ""})
        assert st == 200 and _ids(body, "inquiries") == {oldest["id"]}, body
    st, body = rest.call(alice["id"], "GET", "livechat/rooms", query={"count": "0"})
    assert st == 200 and _ids(body, "rooms") == {oldest["id"]}, body
    st, body = rest.call(alice["id"], "GET", "livechat/rooms",
                         query={"count": "0", "open": "true"})
    assert st == 200 and _ids(body, "rooms") == {oldest["id"]}, body


def test_an_agent_reads_the_visitor_of_its_room_behind_500_newer_ones(
        server: EmbeddedServer) -> None:
    alice = _staff(server, "alice")
    server.livechat_add_agent(SYSTEM, alice["id"])
    server.set_agent_status(alice["id"], "available")
    v = server.save_visitor("widget-token-1", "Vic")
    room = server.visitor_start_room(v["id"])
    assert room["served_by"] == alice["id"]
    server.agent_close_room(alice["id"], room["id"])
    _filler_rooms(server, MAX_LIST, room["created_at"], open=False)
    rest = RestDispatcher(server)
    st, body = rest.call(alice["id"], "GET", "livechat/visitors.info",
                         query={"visitorId": v["id"]})
    assert st == 200 and body["visitor"]["_id"] == v["id"], body
    st, body = rest.call(alice["id"], "GET", "livechat/rooms",
                         query={"count": "0", "open": "false"})
    assert st == 200 and _ids(body, "rooms") == {room["id"]}, body
    # and one who never served the visitor still may not
    bob = _staff(server, "bob")
    server.livechat_add_agent(SYSTEM, bob["id"])
    st, _ = rest.call(bob["id"], "GET", "livechat/visitors.info", query={"visitorId": v["id"]})
    assert st == 403
