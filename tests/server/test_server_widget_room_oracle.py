"""A visitor's widget token reaches only its own rooms, and another room id answers exactly as
an id no room has: "not found", never "exists, not yours" (SECURITY.md). Before, every widget
route that names a room (`GET livechat/room?rid=`, `messages.history`, `POST livechat/message`,
`room.close`) said "no livechat room with id ..." for an unknown id and "no room ... for this
visitor" for another visitor's, so a visitor could tell which room ids exist."""
from __future__ import annotations

from typing import Any

from host.server import SYSTEM, EmbeddedServer
from host.server.rest import RestDispatcher


def _ask(rest: RestDispatcher, rid: str) -> list[tuple[int, dict[str, Any]]]:
    token = "widget-token-b"
    return [
        rest.call(None, "GET", "livechat/room", query={"token": token, "rid": rid}),
        rest.call(None, "GET", f"livechat/messages.history/{rid}", query={"token": token}),
        rest.call(None, "POST", "livechat/message", body={"token": token, "rid": rid,
                                                          "msg": "hello?"}),
        rest.call(None, "POST", "livechat/room.close", body={"token": token, "rid": rid}),
    ]


def test_another_visitors_room_answers_as_a_room_that_does_not_exist(
        server: EmbeddedServer) -> None:
    a = server.save_visitor("widget-token-a", "Ann")
    server.save_visitor("widget-token-b", "Ben")
    theirs = server.visitor_start_room(a["id"])["id"]
    unknown = "Z" * len(theirs)
    rest = RestDispatcher(server)
    for (st, body), (st2, body2) in zip(_ask(rest, theirs), _ask(rest, unknown), strict=True):
        assert st == st2 == 400 and body["errorType"] == "error-invalid-room", body
        assert body == {**body2, "error": body2["error"].replace(unknown, theirs)}
    room = server.livechat_get_room(SYSTEM, theirs)
    assert room["open"] is True and server.messages_list(SYSTEM, theirs) == []
