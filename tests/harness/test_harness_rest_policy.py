"""`rest.call` in the harness under `use_policy`, decided as the gate's REST bridge decides it
(`sandbox/harness_rest.py` over `policies.restmap`). Before, every `rest.call` under a policy was
a HarnessError, so an author could not test an app that uses `ctx.rest` against the operator's
rules; and without a policy a route no app may ever reach went to the responder."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness_helpers import write_app

from sandbox.errors import InvalidArgument, PermissionDenied, QuotaExceeded
from sandbox.harness import AppHarness

POLICY = '''schema = 1
name = "p"

[[rule]]
id = "rest"
effect = "permit"
apps = ["probe"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/users.create", "POST /api/v1/livechat/users/agent",
               "GET /api/v1/info"]
rest_fields = []

[[rule]]
id = "read"
effect = "permit"
apps = ["probe"]
actions = ["users.read"]

[[rule]]
id = "create"
effect = "permit"
apps = ["probe"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
username_pattern = "^ext-[a-z0-9-]{1,40}$"

[[quota]]
id = "creates"
apps = ["probe"]
action = "users.create"
limit = 2
window = "1h"
scope = "install"
'''


@pytest.fixture
def h(tmp_path: Path) -> AppHarness:
    app = write_app(tmp_path / "app",
                    permissions=("server.rest", "users.read", "users.create", "livechat.read",
                                 "livechat.agents"))
    (tmp_path / "p.toml").write_text(POLICY)
    harness = AppHarness.from_dir(app).use_policy(tmp_path / "p.toml")
    answers: list[tuple[str, str, Any]] = []
    harness.rest_responder = lambda method, route, body: (
        answers.append((method, route, body)) or {"status": 200, "body": {"success": True}})
    harness.answers = answers  # type: ignore[attr-defined]
    return harness


def _create(h: AppHarness, **body: Any) -> Any:
    return h.ctx.rest.call("POST", "/api/v1/users.create",
                           {"type": "bot", "name": "Ext", **body})


def test_a_mapped_route_is_decided_as_its_bridge_action(h: AppHarness) -> None:
    assert _create(h, username="ext-1") == {"status": 200, "body": {"success": True}}
    with pytest.raises(PermissionDenied, match="username_pattern"):
        _create(h, username="admin2")  # the users.create rule's pattern, not rest.call's
    with pytest.raises(PermissionDenied, match="user_types"):
        h.ctx.rest.call("POST", "/api/v1/users.create",
                        {"type": "user", "name": "U", "username": "ext-2"})
    with pytest.raises(PermissionDenied, match=r"admin-class|guardrail"):
        _create(h, username="ext-3", roles=["admin"])
    with pytest.raises(InvalidArgument, match="have no meaning"):
        _create(h, username="ext-4", joinTeam=True)  # a field the bridge action cannot carry
    assert [a[2]["username"] for a in h.answers] == ["ext-1"]  # type: ignore[attr-defined]


def test_the_bridge_actions_quota_is_charged_through_rest(h: AppHarness) -> None:
    h.ctx.users.create("ext-a", "A", type="bot")
    _create(h, username="ext-b")
    with pytest.raises(QuotaExceeded, match="creates"):
        _create(h, username="ext-c")  # the third create in the hour, whichever door


def test_a_user_named_by_username_is_a_bridge_call_of_its_own(h: AppHarness) -> None:
    """The lookup is made (and recorded) first; the action is then decided by its own rules:
    no rule here permits livechat.agents, though the route is listed for rest.call."""
    h.server.new_user("someone", "Someone", "user")
    with pytest.raises(PermissionDenied, match=r"livechat\.add_agent"):
        h.ctx.rest.call("POST", "/api/v1/livechat/users/agent", {"username": "someone"})
    assert [a for a, _ in h.calls] == ["rest.call", "users.get_by_username"]
    assert h.answers == []  # type: ignore[attr-defined]


def test_an_unmapped_route_needs_its_route_listed(h: AppHarness) -> None:
    assert h.ctx.rest.call("GET", "/api/v1/info")["status"] == 200
    with pytest.raises(PermissionDenied, match="rest_routes"):
        h.ctx.rest.call("GET", "/api/v1/statistics")


@pytest.mark.parametrize("policy", [True, False])
def test_a_route_no_app_may_reach_is_refused_whatever_the_rules(h: AppHarness,
                                                                 policy: bool) -> None:
    if not policy:
        h.policy = None
    with pytest.raises(PermissionDenied, match="never reachable"):
        h.ctx.rest.call("POST", "/api/v1/users.createToken", {"userId": "u1"})
    with pytest.raises(PermissionDenied, match="names a role"):
        h.ctx.rest.call("POST", "/api/v1/some.thing", {"data": {"roles": ["admin"]}})
    assert h.answers == []  # type: ignore[attr-defined]
