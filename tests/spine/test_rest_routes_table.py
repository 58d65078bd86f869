"""The REST route table of the gate room (`host/gate/rest_routes.py`): every mapped route names
real bridge actions, translates strictly (a field the action cannot express is refused, never
dropped), and the routes no app may call stay refused."""
from __future__ import annotations

import pytest

from host.gate.rest_routes import MAPPED, ByUsername, RouteRefused, find, never, route_actions
from host.server.rest import ROUTES
from policies.vocabulary import ACTIONS


def test_every_mapped_route_names_vocabulary_actions_and_nothing_is_both_mapped_and_never() -> None:
    for m in MAPPED:
        assert m.actions and all(a in ACTIONS for a in m.actions), m.label
        assert never(m.method, m.path) is None, m.label


def test_every_server_write_route_is_mapped_or_never_or_has_no_bridge_action() -> None:
    # A server route that writes what a bridge action writes must be in MAPPED; this list is
    # the routes judged to have no bridge equivalent (they need a rest_fields permit).
    no_bridge_action = {("GET", "info"), ("GET", "me"), ("GET", "roles.list"),
                        ("GET", "livechat/users/agent"), ("POST", "livechat/department"),
                        ("GET", "users.list"), ("GET", "roles.getUsersInRole"),
                        ("GET", "livechat/users/agent/{id}"), ("GET", "livechat/inquiries.list"),
                        ("GET", "livechat/inquiries.getOne"), ("GET", "livechat/config/routing"),
                        ("GET", "channels.list"), ("GET", "livechat/agents/{id}/departments")}
    for r in ROUTES:
        path = r.path.replace("{id}", "x").replace("{token}", "x").replace("{rid}", "x")
        if (r.method, r.path) in no_bridge_action:
            continue
        assert find(r.method, path) is not None or never(r.method, path) is not None, r.path


def test_translation_is_strict() -> None:
    def call(method: str, path: str, params: dict[str, object]) -> tuple[str, dict[str, object]]:
        found = find(method, "/api/v1/" + path)
        assert found is not None
        return found[0].translate(params, found[1], "me-id")

    assert call("POST", "users.create", {"username": "u", "name": "n", "password": "p"}) == (
        "users.create", {"username": "u", "name": "n", "type": "user"})
    with pytest.raises(RouteRefused):
        call("POST", "users.create", {"username": "u", "name": "n", "active": False})
    with pytest.raises(RouteRefused):
        call("POST", "users.setActiveStatus", {"userId": "x", "activeStatus": True})
    with pytest.raises(RouteRefused):
        call("POST", "users.update", {"userId": "x", "data": {"active": True}})
    with pytest.raises(RouteRefused):
        call("POST", "users.update", {"userId": "x", "data": {"customFields": {}, "roles": []}})
    assert call("POST", "users.update", {"userId": "x", "data": {"active": False}}) == (
        "users.deactivate", {"user_id": "x"})
    assert call("POST", "roles.addUserToRole", {"roleId": "bot", "username": "b"}) == (
        "roles.assign", {"user_id": ByUsername("b"), "role": "bot"})
    assert call("POST", "livechat/room.take", {"roomId": "r"}) == (
        "livechat.take_room", {"room_id": "r", "agent_id": "me-id"})
    assert call("DELETE", "livechat/users/agent/u1", {}) == (
        "livechat.remove_agent", {"user_id": "u1"})
    assert call("GET", "livechat/department", {}) == ("livechat.list_departments", {})
    assert call("GET", "livechat/department/d1", {}) == (
        "livechat.get_department", {"department": "d1"})
    with pytest.raises(RouteRefused):
        call("GET", "livechat/department", {"text": "Sales"})  # no filter in the bridge action


def test_route_actions_for_the_disclosure() -> None:
    assert route_actions("POST /api/v1/users.create") == ("users.create",)
    assert route_actions("POST /api/v1/users.createToken") == ()
    assert route_actions("POST /api/v1/livechat/users/manager") == ()
    assert route_actions("POST /api/v1/livechat/department") is None
    assert route_actions("GET /api/v1/chat.getMessage") == ()  # messages.list is the way


def test_an_unmapped_body_naming_a_role_anywhere_is_caught() -> None:
    from policies.restmap import MAX_SCAN_NODES, _names_a_role

    assert _names_a_role({"data": {"roles": ["admin"]}})
    assert _names_a_role({"a": [{"b": {"roleId": "x"}}]})
    assert not _names_a_role({"department": {"name": "x"}, "agents": [{"agentId": "a"}]})
    assert _names_a_role({"xs": list(range(MAX_SCAN_NODES + 1))})  # too wide: refused
