from __future__ import annotations

import logging
from typing import Any

import pytest
from srvhelp import Recorder, op

from host.server import (
    SYSTEM,
    Caller,
    Conflict,
    EmbeddedServer,
    InvalidArgument,
    NotFound,
    ops,
)


def test_repeated_op_id_applies_once_and_returns_the_same_result(
    server: EmbeddedServer, app: Caller
) -> None:
    oid = op()
    assert not server.was_applied(oid)
    first = server.users_create(app, "once", "O", "bot", op_id=oid)
    assert server.was_applied(oid)
    again = server.users_create(app, "once", "O", "bot", op_id=oid)
    assert again == first
    assert server.count_users_created_by("agent-sync") == 1


def test_op_id_reused_for_something_else_is_a_conflict(
    server: EmbeddedServer, app: Caller
) -> None:
    oid = op()
    server.users_create(app, "first", "F", "bot", op_id=oid)
    with pytest.raises(Conflict, match="already used"):
        server.users_create(app, "second", "S", "bot", op_id=oid)
    with pytest.raises(Conflict, match="already used"):
        server.roles_assign(app, "whatever", "bot", op_id=oid)
    with pytest.raises(NotFound):
        server.users_get_by_username(app, "second")


def test_failed_write_records_no_op_and_can_be_retried(
    server: EmbeddedServer, app: Caller
) -> None:
    server.users_create(SYSTEM, "taken", "T", "user")
    oid = op()
    with pytest.raises(Conflict):
        server.users_create(app, "taken", "T", "bot", op_id=oid)
    assert not server.was_applied(oid)
    # Nothing was applied, so the op_id is still free for the host's retry.
    ok = server.users_create(app, "free", "F", "bot", op_id=oid)
    assert server.was_applied(oid) and ok["username"] == "free"


def test_app_writes_need_an_op_id(server: EmbeddedServer, app: Caller) -> None:
    with pytest.raises(InvalidArgument, match="op_id"):
        server.users_create(app, "noop", "N", "bot")
    with pytest.raises(InvalidArgument, match="op_id"):
        server.users_create(app, "noop", "N", "bot", op_id="x" * 200)


def test_events_only_after_commit_and_none_for_failures(
    server: EmbeddedServer, events: Recorder, app: Caller
) -> None:
    seen_in_db: list[bool] = []

    def check_committed(name: str, payload: dict[str, Any]) -> None:
        # A fresh connection sees the room: the event came after COMMIT.
        from host.store import reading

        rid = payload["room"]["id"] if "room" in payload else None
        if rid:
            with reading(server.db.target) as c:
                seen_in_db.append(
                    c.execute("SELECT 1 FROM rooms WHERE id = ?", (rid,)).fetchone() is not None)

    server.subscribe(check_committed)
    vid = server.save_visitor("visitor-token-1")["id"]
    server.livechat_create_room(app, vid, op_id=op())
    assert seen_in_db == [True]
    events.clear()
    with pytest.raises(Conflict):
        server.livechat_create_room(app, vid, op_id=op())  # already has an open room
    with pytest.raises(NotFound):
        server.livechat_close_room(app, "missing", op_id=op())
    assert events.events == []


def test_event_for_a_rolled_back_operation_is_never_emitted(
    server: EmbeddedServer, events: Recorder, app: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The room is started (room_started queued), then recording the op fails at the very end of
    # the transaction: everything rolls back and the queued event is dropped with it.
    vid = server.save_visitor("visitor-token-2")["id"]
    events.clear()

    def failing_record(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ops, "record", failing_record)
    oid = op()
    with pytest.raises(OSError):
        server.livechat_create_room(app, vid, op_id=oid)
    monkeypatch.undo()
    assert events.events == []
    assert server.livechat_list_rooms(app) == []
    assert not server.was_applied(oid)


def test_raising_subscriber_does_not_break_the_action(
    server: EmbeddedServer, events: Recorder, app: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(name: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    server.subscribe(boom)
    late = Recorder()
    unsubscribe = server.subscribe(late)
    with caplog.at_level(logging.ERROR, logger="stockade.server.events"):
        v = server.save_visitor("visitor-token-3")
    assert v["token"] == "visitor-token-3"
    assert "subscriber bug" in caplog.text
    assert late.names() == ["livechat.guest_saved"]  # later subscribers still called
    unsubscribe()
    server.save_visitor("visitor-token-4")
    assert late.names() == ["livechat.guest_saved"]


def test_retried_op_emits_no_second_event(
    server: EmbeddedServer, events: Recorder, app: Caller
) -> None:
    vid = server.save_visitor("visitor-token-5")["id"]
    oid = op()
    events.clear()
    r1 = server.livechat_create_room(app, vid, op_id=oid)
    r2 = server.livechat_create_room(app, vid, op_id=oid)
    assert r1 == r2
    assert events.names() == ["livechat.room_started"]
