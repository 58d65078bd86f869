from __future__ import annotations

import pytest
from srvhelp import ADMIN, Recorder, op

from host.clock import ManualClock
from host.server import (
    SYSTEM,
    Caller,
    Conflict,
    EmbeddedServer,
    Forbidden,
    InvalidArgument,
    NotFound,
    Operator,
)
from host.server.shapes import User


def _agent(server: EmbeddedServer, username: str, *, status: str = "available",
           bot: bool = False) -> User:
    u = server.users_create(SYSTEM, username, username.title(), "bot" if bot else "user")
    server.livechat_add_agent(ADMIN, u["id"])
    server.livechat_set_agent_status(ADMIN, u["id"], status)
    return u


def _visitor(server: EmbeddedServer, n: int = 1) -> str:
    return server.save_visitor(f"visitor-token-{n}", f"Visitor {n}")["id"]


def test_agents_and_status(server: EmbeddedServer, app: Caller) -> None:
    u = server.users_create(app, "agent1", "A1", "user", op_id=op())
    a = server.livechat_add_agent(app, u["id"], op_id=op())
    assert a["status"] == "not-available" and a["user_id"] == u["id"]
    assert "livechat-agent" in server.users_get(app, u["id"])["roles"]
    assert server.livechat_set_agent_status(app, u["id"], "available", op_id=op())["status"] == (
        "available"
    )
    with pytest.raises(InvalidArgument, match="status"):
        server.livechat_set_agent_status(app, u["id"], "busy", op_id=op())
    server.livechat_remove_agent(app, u["id"], op_id=op())
    assert "livechat-agent" not in server.users_get(app, u["id"])["roles"]
    with pytest.raises(NotFound, match="not a livechat agent"):
        server.livechat_set_agent_status(app, u["id"], "available", op_id=op())
    with pytest.raises(NotFound, match="no user"):
        server.livechat_add_agent(app, "missing", op_id=op())


def test_routing_picks_least_busy_with_deterministic_tie_break(
    server: EmbeddedServer, events: Recorder
) -> None:
    b = _agent(server, "bravo")
    a = _agent(server, "alpha")
    _agent(server, "offline", status="not-available")
    served = [server.visitor_start_room(_visitor(server, i))["served_by"] for i in range(4)]
    # Tie on load -> alphabetical username; then least busy alternates.
    assert served == [a["id"], b["id"], a["id"], b["id"]]


def test_bot_agent_routable_while_offline(server: EmbeddedServer) -> None:
    bot = _agent(server, "helperbot", status="not-available", bot=True)
    human = _agent(server, "human", status="not-available")
    room = server.visitor_start_room(_visitor(server))
    assert room["served_by"] == bot["id"]
    assert [x["routable_offline"] for x in server.list_agents()] == [True, False]
    assert human["id"] != room["served_by"]


def test_no_agent_queues_and_take_assigns(server: EmbeddedServer, events: Recorder,
                                          app: Caller) -> None:
    vid = _visitor(server)
    events.clear()
    room = server.livechat_create_room(app, vid, op_id=op())
    assert room["served_by"] is None and room["open"] and room["created_by_app"] == "agent-sync"
    assert events.names() == ["livechat.room_started"]
    _, payload = events.events[0]
    assert payload["room"]["id"] == room["id"] and payload["visitor"]["id"] == vid
    human = _agent(server, "late", status="not-available")
    events.clear()
    taken = server.livechat_take_room(app, room["id"], human["id"], op_id=op())
    assert taken["served_by"] == human["id"]
    assert events.names() == ["livechat.agent_assigned"]
    assert events.events[0][1]["agent"]["user_id"] == human["id"]
    assert events.events[0][1]["room"]["served_by"] == human["id"]
    with pytest.raises(Conflict, match="already serves"):
        server.livechat_take_room(app, room["id"], human["id"], op_id=op())
    other = _agent(server, "other")
    with pytest.raises(Conflict, match="transfer it instead"):
        server.livechat_take_room(app, room["id"], other["id"], op_id=op())


def test_start_emits_started_then_assigned(server: EmbeddedServer, events: Recorder) -> None:
    a = _agent(server, "alpha")
    vid = _visitor(server)
    events.clear()
    room = server.visitor_start_room(vid)
    assert events.names() == ["livechat.room_started", "livechat.agent_assigned"]
    started, assigned = (p for _, p in events.events)
    assert started["visitor"]["id"] == vid and started["room"]["id"] == room["id"]
    assert assigned["agent"]["user_id"] == a["id"] and assigned["room"]["served_by"] == a["id"]
    with pytest.raises(Conflict, match="already has an open room"):
        server.visitor_start_room(vid)


def test_transfer_to_department_and_agent(server: EmbeddedServer, events: Recorder,
                                          app: Caller) -> None:
    a = _agent(server, "alpha")
    b = _agent(server, "bravo")
    c = _agent(server, "charlie", status="not-available")
    sales = server.add_department("Sales", [a["id"], b["id"]])
    room = server.visitor_start_room(_visitor(server), "sales")  # by name, case-insensitive
    assert room["department_id"] == sales["id"] and room["served_by"] == a["id"]
    events.clear()
    moved = server.livechat_transfer_room(app, room["id"], department=sales["id"], op_id=op())
    assert moved["served_by"] == b["id"]  # routing never picks the current agent
    assert events.names() == [
        "livechat.agent_unassigned", "livechat.agent_assigned", "livechat.room_transferred",
    ]
    un, asg, tr = (p for _, p in events.events)
    assert un["agent"]["user_id"] == a["id"] and asg["agent"]["user_id"] == b["id"]
    assert tr["from"]["user_id"] == a["id"] and tr["to"]["user_id"] == b["id"]
    assert tr["department"]["id"] == sales["id"] and tr["room"]["served_by"] == b["id"]
    with pytest.raises(Conflict, match="not available"):
        server.livechat_transfer_room(app, room["id"], agent_id=c["id"], op_id=op())
    with pytest.raises(Conflict, match="already serves"):
        server.livechat_transfer_room(app, room["id"], agent_id=b["id"], op_id=op())
    with pytest.raises(InvalidArgument):
        server.livechat_transfer_room(app, room["id"], op_id=op())
    with pytest.raises(NotFound, match="department"):
        server.livechat_transfer_room(app, room["id"], department="nowhere", op_id=op())
    events.clear()
    back = server.livechat_transfer_room(app, room["id"], agent_id=a["id"], op_id=op())
    assert back["served_by"] == a["id"] and len(events.events) == 3
    # A department with nobody else available: nothing changes.
    solo = server.add_department("Solo", [a["id"]])
    with pytest.raises(Conflict, match="no agent available"):
        server.livechat_transfer_room(app, room["id"], department=solo["id"], op_id=op())
    assert server.livechat_get_room(app, room["id"])["department_id"] == sales["id"]


def test_close(server: EmbeddedServer, events: Recorder, app: Caller) -> None:
    a = _agent(server, "alpha")
    room = server.visitor_start_room(_visitor(server))
    events.clear()
    closed = server.agent_close_room(a["id"], room["id"], "resolved")
    assert not closed["open"] and closed["close_comment"] == "resolved"
    assert closed["closed_by"] == {"type": "user", "id": a["id"], "app_id": None}
    assert events.names() == ["livechat.room_closed"]
    assert events.events[0][1]["closed_by"]["id"] == a["id"]
    assert events.events[0][1]["room"]["open"] is False
    with pytest.raises(Conflict, match="closed"):
        server.livechat_close_room(app, room["id"], op_id=op())
    room2 = server.visitor_start_room(_visitor(server, 2))
    closed2 = server.livechat_close_room(app, room2["id"], "by app", op_id=op())
    assert closed2["closed_by"] == {"type": "user", "id": app.app_user_id, "app_id": "agent-sync"}
    v3 = _visitor(server, 3)
    room3 = server.visitor_start_room(v3)
    with pytest.raises(Forbidden):
        server.visitor_close_room(_visitor(server, 4), room3["id"])
    closed3 = server.visitor_close_room(v3, room3["id"])["closed_by"]
    assert closed3 is not None and closed3["type"] == "visitor"
    assert {r["id"] for r in server.livechat_list_rooms(app, open=False)} == {
        room["id"], room2["id"], room3["id"]
    }
    assert server.livechat_list_rooms(app, open=True) == []


def test_rooms_that_do_not_exist(server: EmbeddedServer, app: Caller) -> None:
    _agent(server, "alpha")
    for call in (
        lambda: server.livechat_get_room(app, "nope"),
        lambda: server.livechat_take_room(app, "nope", app.app_user_id or "", op_id=op()),
        lambda: server.livechat_transfer_room(app, "nope", department="x", op_id=op()),
        lambda: server.livechat_close_room(app, "nope", op_id=op()),
        lambda: server.livechat_set_agent_display(app, "nope", "N", op_id=op()),
        lambda: server.messages_send(app, "nope", "hi", op_id=op()),
        lambda: server.messages_list(app, "nope"),
        lambda: server.livechat_get_visitor(app, "nope"),
        lambda: server.livechat_create_room(app, "nope", op_id=op()),
        lambda: server.visitor_send_message("nope", "nope", "hi"),
    ):
        with pytest.raises(NotFound):
            call()


def test_agent_display_only_by_the_serving_app(
    server: EmbeddedServer, app: Caller, other_app: Caller
) -> None:
    assert app.app_user_id and other_app.app_user_id
    for c in (app, other_app):
        server.livechat_add_agent(c, c.app_user_id or "", op_id=op())
    server.livechat_set_agent_status(app, app.app_user_id, "available", op_id=op())
    room = server.visitor_start_room(_visitor(server))
    assert room["served_by"] == app.app_user_id
    with pytest.raises(Forbidden, match="serves room"):
        server.livechat_set_agent_display(other_app, room["id"], "Mallory", op_id=op())
    with pytest.raises(Forbidden):
        server.livechat_set_agent_display(Operator(None), room["id"], "Op")
    shown = server.livechat_set_agent_display(
        app, room["id"], "Dana (Zendesk)", "https://cdn.example.org/dana.png", op_id=op()
    )
    assert shown["agent_display"] == {
        "name": "Dana (Zendesk)", "avatar_url": "https://cdn.example.org/dana.png"
    }
    with pytest.raises(InvalidArgument, match="avatar_url"):
        server.livechat_set_agent_display(app, room["id"], "D", "javascript:alert(1)", op_id=op())
    with pytest.raises(InvalidArgument):
        server.livechat_set_agent_display(app, room["id"], "x" * 200, op_id=op())
    # A transfer away drops the display: it belonged to the previous serving app.
    human = _agent(server, "human")
    moved = server.livechat_transfer_room(app, room["id"], agent_id=human["id"], op_id=op())
    assert moved["agent_display"] is None


def test_visitors_and_guest_saved(server: EmbeddedServer, events: Recorder, app: Caller) -> None:
    v = server.save_visitor("tok-abcdefgh", "Vera", "vera@example.org", {"plan": "gold"})
    assert events.names() == ["livechat.guest_saved"]
    assert events.events[0][1]["visitor"] == v
    v2 = server.save_visitor("tok-abcdefgh", custom_fields={"tier": "1"})
    assert v2["id"] == v["id"] and v2["name"] == "Vera"
    assert v2["custom_fields"] == {"plan": "gold", "tier": "1"}
    assert server.livechat_get_visitor(app, v["id"]) == v2
    with pytest.raises(InvalidArgument, match="token"):
        server.save_visitor("short")
    with pytest.raises(InvalidArgument, match="token"):
        server.save_visitor("tok-abcdefgh\n")  # `$` under re.match: before a final newline
    with pytest.raises(InvalidArgument):
        server.save_visitor("tok-abcdefgh", custom_fields={"bad key": "x"})


def test_queued_rooms_are_routed_when_an_agent_becomes_available(
    server: EmbeddedServer, events: Recorder, app: Caller, clock: ManualClock
) -> None:
    """Rooms that waited because nobody was routable are routed, oldest first, as soon as an
    agent becomes available; a department's queue only to its own agents."""
    late = _agent(server, "late", status="not-available")
    sales_agent = _agent(server, "seller", status="not-available")
    server.add_department("Sales", [sales_agent["id"]])
    first = server.visitor_start_room(_visitor(server, 1))
    clock.advance(1)  # the queue's order is by the time a room started waiting
    second = server.visitor_start_room(_visitor(server, 2))
    in_sales = server.visitor_start_room(_visitor(server, 3), "Sales")
    assert first["served_by"] is second["served_by"] is in_sales["served_by"] is None
    events.clear()
    server.livechat_set_agent_status(app, late["id"], "available", op_id=op())
    assigned = [p["room"]["id"] for n, p in events.events if n == "livechat.agent_assigned"]
    assert assigned == [first["id"], second["id"]]  # oldest first; Sales is not late's
    assert server.livechat_get_room(app, in_sales["id"])["served_by"] is None
    events.clear()
    server.livechat_set_agent_status(app, sales_agent["id"], "available", op_id=op())
    assert [p["room"]["id"] for n, p in events.events
            if n == "livechat.agent_assigned"] == [in_sales["id"]]
    assert server.livechat_get_room(app, in_sales["id"])["served_by"] == sales_agent["id"]


def test_joining_a_department_or_becoming_a_bot_routes_its_queue(
    server: EmbeddedServer, events: Recorder
) -> None:
    """The other ways an agent becomes routable for a queue: joining its department, and the
    bot role (routable while offline). A change that leaves it unroutable routes nothing."""
    agent = _agent(server, "joiner")
    server.add_department("Support", [])
    waiting = server.visitor_start_room(_visitor(server, 1), "Support")
    assert waiting["served_by"] is None
    events.clear()
    server.add_department_agent("Support", agent["id"])
    assert [n for n, _ in events.events] == ["livechat.agent_assigned"]
    offline = _agent(server, "sleeper", status="not-available")
    server.livechat_set_agent_status(ADMIN, agent["id"], "not-available")
    queued = server.visitor_start_room(_visitor(server, 2))
    assert queued["served_by"] is None
    events.clear()
    server.roles_assign(ADMIN, offline["id"], "user")  # still not routable: nothing moves
    assert events.events == []
    server.roles_assign(ADMIN, offline["id"], "bot")
    assert [(n, p["room"]["id"]) for n, p in events.events] == [
        ("livechat.agent_assigned", queued["id"])]


def test_a_reactivated_agent_takes_the_queue_it_left(server: EmbeddedServer,
                                                     events: Recorder) -> None:
    """Deactivating the only agent leaves new rooms queued; reactivating it routes them (the
    status it kept says available), and deactivating routes nothing."""
    agent = _agent(server, "returner")
    server.users_set_active(ADMIN, agent["id"], False)
    waiting = server.visitor_start_room(_visitor(server, 1))
    assert waiting["served_by"] is None
    events.clear()
    server.users_set_active(ADMIN, agent["id"], False)  # still inactive: nothing moves
    assert events.events == []
    server.users_set_active(ADMIN, agent["id"], True)
    assert [(n, p["room"]["id"]) for n, p in events.events
            if n == "livechat.agent_assigned"] == [("livechat.agent_assigned", waiting["id"])]
    assert server.livechat_get_room(ADMIN, waiting["id"])["served_by"] == agent["id"]
