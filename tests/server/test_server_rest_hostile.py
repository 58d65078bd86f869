"""Malformed input anywhere is a 400 in Rocket.Chat's error shape, never a 500; lists page.

Each case named below gave HTTP 500 with a traceback in the log before: `?count=²` (str.isdigit
is true for it, int() is not), a 5,000-digit count (int() refuses more than 4,300 digits), and a
body nested thousands deep (json.loads raised RecursionError, which nothing caught). A property
test then drives every route with hostile query strings and bodies.
"""
from __future__ import annotations

import json
import logging
import string
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_rest import base_url, client, svc  # noqa: F401 - fixtures

from host.server import SYSTEM, EmbeddedServer
from host.server.rest import ROUTES
from host.server.rest_errors import BARE_REFUSALS


def _rocket_chat_refusal(status: int, body: Any) -> bool:
    if status == 401:
        return body == {"status": "error", "message": "You must be logged in to do this."}
    if isinstance(body, dict) and "errorType" not in body:  # Rocket.Chat's text-only refusals
        return body.get("success") is False and body.get("error") in BARE_REFUSALS.values()
    return (isinstance(body, dict) and body.get("success") is False
            and isinstance(body.get("error"), str) and isinstance(body.get("errorType"), str))


@pytest.mark.parametrize("query", [
    {"count": "²"}, {"count": "9" * 5000}, {"offset": "-1"}, {"count": "1e3"},
    {"count": "٣"}, {"offset": "0x10"}, {"count": " 5"},
])
def test_a_malformed_page_number_is_a_400(client: httpx.Client, query: dict[str, str]) -> None:  # noqa: F811
    r = client.get("/api/v1/livechat/users/agent", params=query)
    assert r.status_code == 400, r.text
    assert r.json()["errorType"] == "invalid-params"


@pytest.mark.parametrize("depth", [20, 5000])
def test_a_body_nested_too_deep_is_a_400(client: httpx.Client, depth: int) -> None:  # noqa: F811
    raw = '{"username": "x", "name": ' + "[" * depth + "]" * depth + "}"
    r = client.post("/api/v1/users.create", content=raw.encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert _rocket_chat_refusal(r.status_code, r.json())


def test_a_paging_client_reaches_the_end(client: httpx.Client, server: EmbeddedServer) -> None:  # noqa: F811
    for i in range(7):
        server.livechat_add_agent(SYSTEM, server.users_create(SYSTEM, f"ag{i}", "A", "user")["id"])
    seen: list[str] = []
    offset = 0
    while True:
        page = client.get("/api/v1/livechat/users/agent",
                          params={"count": "3", "offset": str(offset)}).json()
        assert page["total"] == 7 and page["offset"] == offset
        if not page["users"]:
            break
        assert page["count"] == len(page["users"]) <= 3
        seen += [u["username"] for u in page["users"]]
        offset += page["count"]
    assert seen == sorted(seen) and len(set(seen)) == 7
    everything = client.get("/api/v1/livechat/users/agent", params={"count": "0"}).json()
    assert everything["count"] == 7


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=30,
)
_KEYS = st.sampled_from(["count", "offset", "roomId", "userId", "username", "open", "rid",
                         "visitorId", "token"]) | st.text(string.ascii_letters, max_size=8)
_FIELDS = st.sampled_from(["username", "name", "userId", "roleName", "roomId", "rid", "msg",
                           "message", "visitor", "department", "data", "status", "agentId",
                           "token", "customFields", "roles", "type", "email", "comment"])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), param=_TEXT,
       query=st.dictionaries(_KEYS, _TEXT, max_size=4),
       body=st.dictionaries(_FIELDS | _TEXT, _JSON, max_size=5) | _JSON)
def test_no_input_makes_a_500(client: httpx.Client,  # noqa: F811
                              caplog: pytest.LogCaptureFixture, route: Any, param: str,
                              query: dict[str, str], body: Any) -> None:
    """Over real HTTP on loopback, as the admin service identity (every route's role check
    passes, so the input reaches each handler)."""
    path = route.path.replace("{id}", quote(param, safe="") or "x")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        r = client.request(route.method, f"/api/v1/{path}", params=query,
                           content=json.dumps(body).encode() if route.method != "GET" else None,
                           headers={"Content-Type": "application/json"})
    assert r.status_code != 500 and not caplog.records, (route.path, query, body, r.text)
    if r.status_code >= 400:
        assert _rocket_chat_refusal(r.status_code, r.json()), r.text


# Every name a route reads its input by (its query, or its JSON body).
_NAMED = ["username", "name", "userId", "roleName", "roomId", "rid", "msg", "text", "email",
          "password", "department", "agentId", "visitorToken", "token", "comment", "key",
          "value", "fieldName", "fieldValue", "tags", "customFields"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_a_nul_character_anywhere_is_a_400_on_either_store(
        client: httpx.Client, caplog: pytest.LogCaptureFixture, route: Any) -> None:  # noqa: F811
    """PostgreSQL text cannot hold U+0000, and psycopg refuses it before sending: every lookup
    or write of such text was a 500 with a traceback on a shared store (24 routes of 54; the
    property test above found one of them about one run in a few hundred). It is the caller's
    bad input: a 400 in Rocket.Chat's shape, as SQLite's "not found" is."""
    values = {name: "a\x00b" for name in _NAMED}
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        r = client.request(route.method, "/api/v1/" + route.path.replace("{id}", "x%00y"),
                           params=values if route.method == "GET" else None,
                           content=json.dumps(values).encode() if route.method != "GET" else None,
                           headers={"Content-Type": "application/json"})
    assert r.status_code != 500 and not caplog.records, r.text
    if r.status_code >= 400:
        login_refused = route.path == "login" and r.json().get("error") == "Unauthorized"
        assert login_refused or _rocket_chat_refusal(r.status_code, r.json()), r.text
