"""A body reaches a REST route only as JSON. A page on any site the operator visits can POST
`text/plain` or a form to this loopback port without asking the browser first (a "simple"
request); only `application/json` needs the CORS preflight this API never answers. Before, such a
body was parsed as JSON all the same: another site's page spent an account's sign-in budget
(locking the admin out) or posted on the anonymous widget routes."""
from __future__ import annotations

import json

import httpx
import pytest
from test_server_rest import base_url  # noqa: F401 - fixture

from host.server import SYSTEM, EmbeddedServer
from host.server.auth import set_password

PASSWORD = "correct horse battery"  # a test user's


@pytest.fixture
def admin(server: EmbeddedServer) -> str:
    u = server.users_create(SYSTEM, "boss", "Boss", "user", roles=["admin"])
    set_password(server.db, u["id"], PASSWORD)
    return "boss"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_body_another_site_can_send_is_refused_unread(
        base_url: str, admin: str, content_type: str | None) -> None:  # noqa: F811
    body = json.dumps({"user": admin, "password": PASSWORD}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    r = httpx.post(f"{base_url}/api/v1/login", content=body, headers=headers)
    assert r.status_code == 400 and "application/json" in r.text, r.text
    assert "authToken" not in r.text


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.api+json"])
def test_json_in_any_spelling_signs_in(base_url: str, admin: str,  # noqa: F811
                                       content_type: str) -> None:
    body = json.dumps({"user": admin, "password": PASSWORD}).encode()
    r = httpx.post(f"{base_url}/api/v1/login", content=body,
                   headers={"Content-Type": content_type})
    assert r.status_code == 200 and r.json()["data"]["authToken"], r.text
