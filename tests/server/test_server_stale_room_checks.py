"""An agent's REST transfer or close is allowed because it serves the room: that is checked
again in the write itself. The route checks the serving agent on a read made before the write
takes the store's write lock; a manager's transfer committing meanwhile (the agent's write
waiting behind it for the lock) moved the room to another agent, and the first agent's stale
check then let it pass the room on or close it, another agent's conversation. Before, both
answered 200: the room left the agent now serving it, or was closed under it."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from host.server import SYSTEM, EmbeddedServer
from host.server import rest_routes as routes
from host.server.rest import RestDispatcher
from host.server.shapes import Room, User


def _agent(server: EmbeddedServer, name: str, roles: tuple[str, ...] = ()) -> User:
    u = server.users_create(SYSTEM, name, name.title(), "user", roles=list(roles))
    server.livechat_add_agent(SYSTEM, u["id"])
    server.livechat_set_agent_status(SYSTEM, u["id"], "available")
    return u


@pytest.fixture
def desk(server: EmbeddedServer) -> Iterator[dict[str, Any]]:
    alice = _agent(server, "alice")
    bob, carol = _agent(server, "bob"), _agent(server, "carol")
    boss = server.users_create(SYSTEM, "boss", "Boss", "user", roles=["livechat-manager"])
    room = server.visitor_start_room(server.save_visitor("widget-token-1", "Vic")["id"])
    assert room["served_by"] == alice["id"]  # the least busy, first by name
    yield {"alice": alice, "bob": bob, "carol": carol, "boss": boss, "room": room}


def _after_the_check(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Any]) -> None:
    """Run `meanwhile` once, right after the route read the room for its access check (as a
    write committed by another thread while this request waited for the write lock)."""
    real = routes.room_for
    done: list[bool] = []

    def room_for(ctx: routes.Ctx, room_id: str, what: str) -> Room:
        room = real(ctx, room_id, what)
        if not done:
            done.append(True)
            meanwhile()
        return room

    monkeypatch.setattr(routes, "room_for", room_for)


@pytest.mark.parametrize("route", ["livechat/room.transfer", "livechat/room.forward"])
def test_a_transfer_by_the_agent_who_no_longer_serves_the_room_is_refused(
        server: EmbeddedServer, desk: dict[str, Any], route: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, carol, room = desk["alice"], desk["bob"], desk["carol"], desk["room"]
    _after_the_check(monkeypatch, lambda: server.livechat_transfer_room(
        SYSTEM, room["id"], agent_id=bob["id"]))
    st, out = RestDispatcher(server).call(alice["id"], "POST", route,
                                          body={"roomId": room["id"], "userId": carol["id"]})
    assert st == 403 and out["errorType"] == "error-unauthorized", out
    assert server.livechat_get_room(SYSTEM, room["id"])["served_by"] == bob["id"]


def test_a_close_by_the_agent_who_no_longer_serves_the_room_is_refused(
        server: EmbeddedServer, desk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, room = desk["alice"], desk["bob"], desk["room"]
    _after_the_check(monkeypatch, lambda: server.livechat_transfer_room(
        SYSTEM, room["id"], agent_id=bob["id"]))
    st, out = RestDispatcher(server).call(alice["id"], "POST", "livechat/room.closeByUser",
                                          body={"rid": room["id"]})
    assert st == 403 and out["errorType"] == "error-unauthorized", out
    now = server.livechat_get_room(SYSTEM, room["id"])
    assert now["open"] is True and now["served_by"] == bob["id"]


def test_the_serving_agent_and_a_manager_still_transfer_and_close(
        server: EmbeddedServer, desk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, carol, boss, room = (desk[k] for k in ("alice", "bob", "carol", "boss", "room"))
    rest = RestDispatcher(server)
    st, out = rest.call(alice["id"], "POST", "livechat/room.transfer",
                        body={"roomId": room["id"], "userId": bob["id"]})
    assert st == 200 and out["room"]["servedBy"]["_id"] == bob["id"], out
    # a manager's check is no serving agent's: a transfer meanwhile does not refuse it
    _after_the_check(monkeypatch, lambda: server.livechat_transfer_room(
        SYSTEM, room["id"], agent_id=alice["id"]))
    st, out = rest.call(boss["id"], "POST", "livechat/room.transfer",
                        body={"roomId": room["id"], "userId": carol["id"]})
    assert st == 200 and out["room"]["servedBy"]["_id"] == carol["id"], out
    st, out = rest.call(carol["id"], "POST", "livechat/room.closeByUser",
                        body={"rid": room["id"], "comment": "done"})
    assert st == 200 and out["comment"] == "done", out
    assert server.livechat_get_room(SYSTEM, room["id"])["open"] is False
