"""A JSON body holding a lone UTF-16 surrogate is a 400, never a 500.

Python's JSON parser turns the escape `"\\ud800"` (and the bytes ED A0 80, which it decodes with
`surrogatepass`) into a str that no UTF-8 store can hold. Before, it passed every check (the
length caps count characters) and failed deep inside the write: an anonymous widget client got
HTTP 500 on `livechat/message` and `livechat/visitor`, with a traceback in the host's log for
every such request, and a staff client on `chat.sendMessage`. No message reached a pre-send hook
or the store either way; the refusal now says why, in Rocket.Chat's error shape.
"""
from __future__ import annotations

import httpx
import pytest
from test_server_rest import base_url, client, svc  # noqa: F401 - fixtures

from host.server import SYSTEM, EmbeddedServer

ESCAPED = b'"a\\ud800b"'  # a JSON escape of a lone high surrogate
RAW = b'"a\xed\xa0\x80b"'  # the same surrogate as (CESU-8) bytes


def _post(c: httpx.Client, route: str, raw: bytes) -> httpx.Response:
    return c.post(f"/api/v1/{route}", content=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("text", [ESCAPED, RAW], ids=["escape", "bytes"])
def test_a_lone_surrogate_is_a_400_on_the_message_routes(
        client: httpx.Client, server: EmbeddedServer, text: bytes,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    visitor = server.save_visitor("visitor-surrogate-1", "V")
    rid = server.visitor_start_room(visitor["id"])["id"]
    bodies = {
        "livechat/message":
            b'{"token": "visitor-surrogate-1", "rid": "' + rid.encode() + b'", "msg": ' + text
            + b"}",
        "livechat/visitor": b'{"visitor": {"token": "visitor-surrogate-2", "name": ' + text
                            + b"}}",
        "chat.sendMessage": b'{"message": {"rid": "' + rid.encode() + b'", "msg": ' + text
                            + b"}}",
    }
    with httpx.Client(base_url=str(client.base_url), timeout=10) as widget:
        for route, raw in bodies.items():
            r = _post(client if route.startswith("chat.") else widget, route, raw)
            assert r.status_code == 400, (route, r.status_code, r.text)
            assert r.json()["success"] is False and r.json()["errorType"] == "invalid-params"
    assert server.messages_list(SYSTEM, rid) == []
    assert not [rec for rec in caplog.records if rec.exc_info], "a traceback was logged"


def test_valid_non_ascii_text_still_goes_through(client: httpx.Client,  # noqa: F811
                                                 server: EmbeddedServer) -> None:
    visitor = server.save_visitor("visitor-surrogate-3", "V")
    rid = server.visitor_start_room(visitor["id"])["id"]
    text = "caf\u00e9 \U0001f600 \u4e2d"
    with httpx.Client(base_url=str(client.base_url), timeout=10) as widget:
        r = widget.post("/api/v1/livechat/message",
                        json={"token": "visitor-surrogate-3", "rid": rid, "msg": text})
        assert r.status_code == 200, r.text
        # the astral character as a JSON surrogate *pair* is valid JSON for it
        pair = b'{"token": "visitor-surrogate-3", "rid": "' + rid.encode() \
            + b'", "msg": "\\ud83d\\ude00"}'
        assert _post(widget, "livechat/message", pair).status_code == 200
    assert [m["text"] for m in server.messages_list(SYSTEM, rid)] == [text, "\U0001f600"]
