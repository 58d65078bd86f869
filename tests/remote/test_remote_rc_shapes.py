"""The remote adapter against answers shaped as Rocket.Chat's OpenAPI definitions show them (an
in-process fake workspace, `rcfake.py`), where the stand-in once answered otherwise and so hid
the adapter's misreading."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from rcfake import USER_NOT_FOUND, Answer, FakeWorkspace, fake_client, remote_on

from host.clock import SystemClock
from host.home import Home
from host.server.errors import Conflict, Forbidden, NotFound
from host.server.principals import SYSTEM
from host.server.remote import config


def _users(docs: dict[str, dict[str, Any]]) -> FakeWorkspace:
    def info(q: dict[str, str], _b: Any) -> Answer:
        doc = docs.get(q.get("userId") or q.get("username") or "")
        return (200, {"user": doc, "success": True}) if doc else USER_NOT_FOUND
    return FakeWorkspace({"GET users.info": info})


def test_a_user_deleted_on_the_workspace_is_not_found_and_frees_its_seat(tmp_path: Path) -> None:
    """users.info of a missing user is a 400 with no errorType: NotFound here, so the seat
    read-back frees the seat of a user deleted by hand (and goes on to the next), and a
    users.create whose request never reached the workspace reads back as not applied."""
    fake = _users({u: {"_id": u, "username": u, "active": False, "roles": ["user"]}
                   for u in ("u1", "u3")})
    rs = remote_on(fake, tmp_path / "h")
    with pytest.raises(NotFound):
        rs.users_get(SYSTEM, "u2")
    for uid in ("u1", "u2", "u3"):
        rs.owned.record_user(uid, uid, created_by_app="app1", app_id=None, now=1.0)
    assert rs.users_count_active_app_created() == 3
    rs.checkpoint()  # the host's upkeep: one pass of the seat read-back
    assert rs.users_count_active_app_created() == 0  # u2 deleted, u1 and u3 deactivated
    rs.owned.begin_op("op-1", "users.create", {"username": "newbie", "app_id": "app1"}, 1.0)
    assert rs.was_applied("op-1") is False


def _listing(docs: list[dict[str, Any]], *, honours: bool) -> FakeWorkspace:
    """users.list as Rocket.Chat answers it: its default projection has no customFields, which
    `fields={"customFields": 1}` adds; `query` honoured or (Rocket.Chat 7 by default) not."""
    def page(q: dict[str, str], _b: Any) -> Answer:
        shown = docs
        if honours and q.get("query"):
            (path, want), = json.loads(q["query"]).items()
            shown = [d for d in docs if d.get("customFields", {}).get(path.split(".", 1)[1])
                     == want]
        fields = json.loads(q.get("fields") or "{}") if honours else {}
        out = [d if fields.get("customFields") == 1 else
               {k: v for k, v in d.items() if k != "customFields"} for d in shown]
        return 200, {"users": out, "count": len(out), "offset": 0, "total": len(out),
                     "success": True}

    def info(q: dict[str, str], _b: Any) -> Answer:
        doc = next((d for d in docs if d["_id"] == q.get("userId")), None)
        return (200, {"user": doc, "success": True}) if doc else USER_NOT_FOUND
    return FakeWorkspace({"GET users.list": page, "GET users.info": info})


_CRM_USERS = [{"_id": f"u{i}", "username": f"user{i}", "active": True, "roles": ["user"],
               "customFields": {"crm_id": f"C-{i}"}} for i in range(3)]


def test_find_by_field_asks_for_custom_fields_and_finds_the_match(tmp_path: Path) -> None:
    fake = _listing(_CRM_USERS, honours=True)
    rs = remote_on(fake, tmp_path / "h")
    assert [u["id"] for u in rs.users_find_by_field(SYSTEM, "crm_id", "C-1")] == ["u1"]
    (q, _b), = fake.sent("GET", "users.list")
    assert json.loads(q["fields"]) == {"customFields": 1}


def test_find_by_field_reads_users_listed_without_custom_fields_and_returns_only_matches(
        tmp_path: Path) -> None:
    """A workspace that ignores `query` and `fields` lists everyone without custom fields: each
    is read with users.info, and only the one whose field matches is returned."""
    fake = _listing(_CRM_USERS, honours=False)
    rs = remote_on(fake, tmp_path / "h")
    assert [u["id"] for u in rs.users_find_by_field(SYSTEM, "crm_id", "C-2")] == ["u2"]
    assert len(fake.sent("GET", "users.info")) == 3


def _departments() -> FakeWorkspace:
    """Departments and agents as Rocket.Chat's OpenAPI examples show them: the list carries
    `numAgents` only, `livechat/department/{_id}` the agents beside the department, and
    `livechat/users/agent/{_id}` no departments (`livechat/agents/{agentId}/departments` has)."""
    dep = {"_id": "D1", "enabled": True, "name": "Support", "numAgents": 1}
    link = {"_id": "L1", "agentId": "A1", "departmentId": "D1", "username": "bot.one",
            "count": 0, "order": 0}
    return FakeWorkspace({
        "GET livechat/department": lambda q, b: (200, {"departments": [dep], "count": 1,
                                                       "offset": 0, "total": 1,
                                                       "success": True}),
        "GET livechat/department/D1": lambda q, b: (200, {"department": dep, "agents": [link],
                                                          "success": True}),
        "GET livechat/users/agent/A1": lambda q, b: (200, {"user": {
            "_id": "A1", "username": "bot.one", "name": "Bot", "status": "online",
            "statusLivechat": "available"}, "success": True}),
        "GET livechat/agents/A1/departments": lambda q, b: (200, {"departments": [
            {**link, "departmentEnabled": True}], "success": True}),
        "GET users.info": lambda q, b: (200, {"user": {"_id": "A1", "username": "bot.one"},
                                              "success": True}),
        "POST livechat/department/D1/agents": lambda q, b: (200, {"success": True}),
        "DELETE livechat/users/agent/A1": lambda q, b: (200, {"success": True}),
    })


def test_department_agents_and_an_agents_departments_are_read_where_rocket_chat_has_them(
        tmp_path: Path) -> None:
    fake = _departments()
    rs = remote_on(fake, tmp_path / "h")
    assert rs.livechat_get_department(SYSTEM, "support")["agents"] == ["A1"]
    assert rs.livechat_add_department_agent(SYSTEM, "D1", "A1")["agents"] == ["A1"]
    assert rs.agent("A1")["departments"] == ["D1"]
    # an uninstall with --agents remove takes the app's agents out of their departments too
    rs.owned.record_user("A1", "bot.one", created_by_app="app1", app_id=None, now=1.0)
    fake.log.clear()
    assert rs.remove_agents_of_app("app1") == 1
    assert fake.sent("POST", "livechat/department/D1/agents") == [
        ({}, {"upsert": [], "remove": [{"agentId": "A1", "username": "bot.one"}]})]


def _tokens() -> FakeWorkspace:
    """users.createToken as Rocket.Chat 8+ answers it (OpenAPI: `secret` required, a wrong or
    missing one is 400 error-not-authorized), and chat.sendMessage."""
    def create(_q: dict[str, str], b: Any) -> Answer:
        if b.get("secret") != "pass123":
            return 400, {"success": False, "error": "Not authorized [error-not-authorized]",
                         "errorType": "error-not-authorized"}
        return 200, {"data": {"userId": b["userId"], "authToken": "t-" + b["userId"]},
                     "success": True}

    def send(_q: dict[str, str], b: Any) -> Answer:
        return 200, {"message": {"_id": "M1", "rid": b["message"]["rid"],
                                 "msg": b["message"]["msg"], "u": {"_id": "U1"},
                                 "ts": "2024-01-01T00:00:00.000Z"}, "success": True}
    return FakeWorkspace({"POST users.createToken": create, "POST chat.sendMessage": send})


def test_a_message_as_a_user_mints_its_token_with_the_stored_secret(tmp_path: Path) -> None:
    fake = _tokens()
    home = Home(tmp_path / "h").ensure()
    config.save(home, "https://rc.invalid", "svc-user", "svc-token",
                create_tokens_secret="pass123")
    assert json.loads(config.secret_path(home).read_text())["create_tokens_secret"] == "pass123"
    rs = config.open_remote(home, SystemClock(), client=fake_client(fake))
    assert rs.messages_send_as_user(SYSTEM, "R1", "U1", "hi")["id"] == "M1"
    assert [b for _q, b in fake.sent("POST", "users.createToken")] == [
        {"userId": "U1", "secret": "pass123"}]
    # No secret stored: the workspace's refusal is a Forbidden that says what to do, not a
    # bad argument, and the secret is never in an error message.
    with pytest.raises(Forbidden, match="CREATE_TOKENS_FOR_USERS_SECRET") as err:
        remote_on(fake, tmp_path / "h2").messages_send_as_user(SYSTEM, "R1", "U1", "hi")
    assert "pass123" not in err.value.message


def _closing(lose_first_answer: bool) -> FakeWorkspace:
    """closeByUser as Rocket.Chat answers it: a room already closed is a 400 whose `error` is
    `error-room-already-closed` (no errorType); the first close's answer may be lost (a read
    timeout after the workspace applied it)."""
    room = {"_id": "R1", "t": "l", "open": True, "v": {"_id": "V1"}}
    calls = [0]

    def close(_q: dict[str, str], _b: Any) -> Answer:
        calls[0] += 1
        if not room["open"]:
            return 400, {"success": False, "error": "error-room-already-closed"}
        room["open"] = False
        if lose_first_answer and calls[0] == 1:
            raise httpx.ReadTimeout("the answer was lost")
        return 200, {"success": True}
    return FakeWorkspace({"POST livechat/room.closeByUser": close,
                          "GET rooms.info": lambda q, b: (200, {"room": room, "success": True})})


def test_a_close_retried_after_its_answer_was_lost_is_applied(tmp_path: Path) -> None:
    fake = _closing(lose_first_answer=True)
    rs = remote_on(fake, tmp_path / "h")
    assert rs.livechat_close_room(SYSTEM, "R1", op_id="op-close-1")["open"] is False
    assert len(fake.sent("POST", "livechat/room.closeByUser")) == 2
    assert rs.owned.op("op-close-1")[1] == "applied" and rs.was_applied("op-close-1")


def test_closing_a_room_closed_before_is_a_conflict_not_applied(tmp_path: Path) -> None:
    fake = _closing(lose_first_answer=False)
    rs = remote_on(fake, tmp_path / "h")
    rs.livechat_close_room(SYSTEM, "R1", op_id="op-a")
    with pytest.raises(Conflict):
        rs.livechat_close_room(SYSTEM, "R1", op_id="op-b")
    assert not rs.was_applied("op-b")
