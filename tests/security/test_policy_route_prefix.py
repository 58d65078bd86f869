"""A REST route is one route however its /api/v1/ prefix is written (DESIGN rules 2 and 11).

Attack (held before the fix): the server's REST dispatcher reads a route below its /api/v1/
prefix, given or not (`host.server.rest.normalize_route`: `/rooms.get` is
`/api/v1/rooms.get`), but the policy compared `rest_routes` entries and the called route as
written. A forbid of `GET /api/v1/rooms.get` did not stop the app calling `/rooms.get` under a
permit listing both spellings: the real gate allowed it and the dispatcher ran rooms.get. Now
both sides are compared as `METHOD /api/v1/<route below the prefix>`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gatehelp import policy_rig

from host.errors import GateError
from policies.names import normalize_route, parse_route_entry

APP = "rester"
POLICY = f'''
schema = 1
name = "rester"
[[rule]]
id = "rester-rest"
effect = "permit"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/rooms.get", "GET /rooms.get", "GET /channels.list"]
rest_fields = []
[[rule]]
id = "rester-no-rooms"
effect = "forbid"
apps = ["{APP}"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/rooms.get"]
'''


def test_a_forbidden_route_without_its_prefix_is_forbidden(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, APP, ["server.rest"], {"rester": POLICY})
    served: list[str] = []

    def dispatcher(_session: Any, args: dict[str, Any], _op: str | None, _facts: Any) -> Any:
        served.append(args["route"])  # stands in for the server's dispatcher
        return {"status": 200, "body": {"success": True}}

    rig.gate.host_actions["rest.call"] = dispatcher
    for route in ("/api/v1/rooms.get", "/rooms.get"):
        with pytest.raises(GateError, match="rester-no-rooms"):
            rig.gate.handle(rig.session, "rest.call", {"method": "GET", "route": route})
    assert served == []
    # The permit reads both spellings alike too: a route it lists is served either way.
    for route in ("/api/v1/channels.list", "/channels.list"):
        assert rig.gate.handle(rig.session, "rest.call",
                               {"method": "GET", "route": route})["status"] == 200
    assert served == ["/api/v1/channels.list", "/channels.list"]


def test_an_entry_and_a_call_name_a_route_as_the_dispatcher_reads_it() -> None:
    assert parse_route_entry("GET /rooms.get") == parse_route_entry("get /api/v1/rooms.get") \
        == normalize_route("GET", "/rooms.get") == "GET /api/v1/rooms.get"
    # The dispatcher strips the prefix once: a doubled one is another route.
    assert normalize_route("GET", "/api/v1/api/v1/x") == "GET /api/v1/api/v1/x"
