"""A hostile workspace's `Retry-After: nan` on a 429: the client's wait must stay a number.

`float("nan")` parses, and `min(max(nan, 0), cap)` is nan: `time.sleep(nan)` then raised
ValueError out of the client. The gate reads a ValueError as the host refusing bad input before
any write, refunds the units and audits `invalid_argument` — for an idempotent write whose first
attempt was sent and lost (a 502), i.e. one the workspace may well have applied (DESIGN rule 9:
the audit records what actually happened; rule 8: quotas are exact)."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from rcfake import FakeWorkspace, remote_on

from host.server.errors import Unavailable
from host.server.principals import Caller
from host.server.remote.client import RcClient


def _after_a_502(value: str) -> httpx.MockTransport:
    seen = [0]

    def handle(req: httpx.Request) -> httpx.Response:
        seen[0] += 1
        if seen[0] == 1:
            return httpx.Response(502, json={})
        return httpx.Response(429, headers={"Retry-After": value}, json={})
    return httpx.MockTransport(handle)


@pytest.mark.parametrize("value", ["nan", "NaN", "-nan", "inf", "1e999"])
def test_a_non_finite_retry_after_is_a_typed_unavailable_that_may_have_applied(
        value: str) -> None:
    # The real time.sleep: it is the one that refuses NaN.
    c = RcClient("http://rc.invalid", "u", "t", sleep=time.sleep, deadline_s=4.5, retries=2)
    c.http.close()
    c.http = httpx.Client(base_url=c.base, transport=_after_a_502(value))
    with pytest.raises(Unavailable) as err:
        c.call("POST", "roles.addUserToRole", body={}, idempotent=True)
    assert err.value.outcome_unknown  # the lost first attempt may have applied it


def test_a_role_write_answered_nan_stays_pending_for_the_read_back(tmp_path: Path) -> None:
    """Through the adapter: the op stays `pending` and `was_applied` reads the workspace."""
    assigned = [False]
    calls = [0]

    def add(q: dict[str, str], b: object) -> tuple[int, dict[str, object]]:
        calls[0] += 1
        assigned[0] = True
        return (502, {}) if calls[0] == 1 else (429, {})

    def info(q: dict[str, str], b: object) -> tuple[int, dict[str, object]]:
        return 200, {"user": {"_id": "u1", "username": "bob", "active": True,
                              "roles": ["user", "helper"] if assigned[0] else ["user"]}}

    fake = FakeWorkspace({
        "GET users.info": info, "POST roles.addUserToRole": add,
        "GET permissions.listAll": lambda q, b: (200, {"update": []}),
    })
    rs = remote_on(fake, tmp_path)
    rs.client._sleep = time.sleep
    real = fake.handle

    def nan_429(req: httpx.Request) -> httpx.Response:
        resp = real(req)
        if resp.status_code == 429:
            return httpx.Response(429, headers={"Retry-After": "nan"}, json={})
        return resp
    rs.client.http = httpx.Client(base_url=rs.client.base,
                                  transport=httpx.MockTransport(nan_429))
    with pytest.raises(Unavailable) as err:
        rs.roles_assign(Caller("a", "in-a", "au"), "u1", "helper", op_id="op-nan")
    assert err.value.outcome_unknown
    assert rs.owned.op("op-nan") is not None and rs.owned.op("op-nan")[1] == "pending"
    assert rs.was_applied("op-nan") is True
