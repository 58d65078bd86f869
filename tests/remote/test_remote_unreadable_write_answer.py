"""A write the workspace answered 2xx with a body the host cannot read (not JSON, not an
object, over the size cap, or JSON carrying lone UTF-16 surrogates) may have been applied: the
workspace said "done" and only the answer was lost on the way. The client called it
`Unavailable` with `outcome_unknown=False`, so `_write` marked the op `failed` and
`was_applied` answered False: a user created on the workspace was never recorded (its seat
uncounted, the audit saying it failed). A surrogate in an id raised UnicodeEncodeError (a
ValueError, which the gate reads as bad input refused before any write: units refunded) and,
in a read's result, broke the reply frame to the app."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.errors import Unavailable
from host.server.principals import Caller
from host.server.remote.client import MAX_RESPONSE_BYTES
from host.server.remote.server import RemoteServer
from sandbox import frames
from sandbox.frames import Reply

APP = Caller("a", "in-a", "au")
USER = b'{"success":true,"user":{"_id":"u1","username":"bob","active":true,"roles":["user"]}}'


def _workspace(tmp_path: Path, create_answer: bytes, info: bytes = USER) -> RemoteServer:
    rs = remote_on(FakeWorkspace({}), tmp_path)

    made: list[bool] = []

    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/users.create"):
            made.append(True)
            return httpx.Response(200, content=create_answer)
        if req.url.path.endswith("/users.info"):
            if "username" in req.url.params and not made:  # free until it is created
                return httpx.Response(400, json={"success": False, "error": "User not found."})
            return httpx.Response(200, content=info)
        return httpx.Response(200, json={"success": True, "update": []})
    rs.client.http.close()
    rs.client.http = httpx.Client(base_url=rs.client.base, transport=httpx.MockTransport(handle))
    return rs


@pytest.mark.parametrize("answer", [
    b"<html>502 from a proxy that answered 200</html>",
    b'["success"]',
    b'{"success": true, "user": "' + b"x" * (MAX_RESPONSE_BYTES + 1) + b'"}',
], ids=["not-json", "not-an-object", "oversized"])
def test_an_unreadable_2xx_answer_to_a_write_is_settled_by_reading_back(
        tmp_path: Path, answer: bytes) -> None:
    rs = _workspace(tmp_path, answer)
    with pytest.raises(Unavailable) as err:
        rs.users_create(APP, "bob", "Bob", "user", op_id="op-1")
    assert err.value.outcome_unknown
    op = rs.owned.op("op-1")
    assert op is not None and op[1] == "pending"
    assert rs.was_applied("op-1") is True  # the read-back finds bob
    assert rs.owned.created_by("u1") == "a" and rs.seats_in_use([]) == 1


def test_an_unreadable_answer_to_a_read_applied_nothing(tmp_path: Path) -> None:
    rs = _workspace(tmp_path, USER, info=b"<html>oops</html>")
    with pytest.raises(Unavailable) as err:
        rs.users_get(APP, "u1")
    assert not err.value.outcome_unknown


def test_a_lone_surrogate_in_a_created_users_id_is_not_bad_input(tmp_path: Path) -> None:
    odd = b'{"success":true,"user":{"_id":"\\ud800u1","username":"bob","active":true}}'
    rs = _workspace(tmp_path, odd, info=odd)
    try:
        rs.users_create(APP, "bob", "Bob", "user", op_id="op-2")
    except ValueError as exc:  # the gate would refund it as invalid_argument
        pytest.fail(f"a workspace answer raised {type(exc).__name__}: {exc}")
    assert rs.owned.op("op-2") is not None and rs.owned.op("op-2")[1] == "applied"
    assert rs.seats_in_use([]) == 1


@pytest.mark.parametrize("raw", [b'"\\udfffbob"', b'"bob\xed\xa0\x80"'],
                         ids=["escaped", "cesu-bytes"])
def test_a_lone_surrogate_in_a_read_reaches_the_app_as_a_frame(tmp_path: Path,
                                                                raw: bytes) -> None:
    info = b'{"success":true,"user":{"_id":"u1","username":"bob","name":' + raw + b"}}"
    rs = _workspace(tmp_path, USER, info=info)
    user = rs.users_get(APP, "u1")
    frames.encode(Reply(id=1, ok=True, result=dict(user)))  # the reply the app is sent
    assert "\ufffd" in user["name"]
