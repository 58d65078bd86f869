"""`policies.concerns` is the engine's reading of which `when` keys concern which actions:
lint (STK026/028/031/037) and `can-i --list` ask it, so it is held here to the engine's own
decisions, key by key and action by action."""
from __future__ import annotations

import json
from typing import Any

import pytest
from polhelp import ask, unlinted

from policies.concerns import CONCERNS, FORBID_MATCHES, forbid_conditions

OWN = {"target_created_by_app": "agent-sync", "role_privileged": False}
# One request per action, each carrying every argument a constraint could read.
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "users.create": ({"username": "ext-1", "name": "N", "type": "bot", "roles": ["bot"],
                      "custom_fields": {"k": "v"}}, {"role_privileged": False}),
    "roles.assign": ({"user_id": "u1", "role": "bot"}, OWN),
    "roles.remove": ({"user_id": "u1", "role": "bot"}, OWN),
    "users.set_custom_fields": ({"user_id": "u1", "fields": {"k": "v"}}, OWN),
    "users.deactivate": ({"user_id": "u1"}, OWN),
    "http.request": ({"method": "GET", "url": "https://api.example.test/x"},
                     {"resolved_ips": ["93.184.216.34"]}),
    "rest.call": ({"method": "GET", "route": "/api/v1/users.info"}, {"rest_mapped": True}),
    "livechat.get_room": ({"room_id": "r1"}, {}),
}
PERMIT_WHEN = {"user_types": ["bot"], "roles": ["bot"], "custom_field_keys": ["k"],
               "domains": ["api.example.test"], "rest_routes": ["GET /api/v1/users.info"]}
# A value of each key that the sample requests do not match.
MISS: dict[str, Any] = {"user_types": ["user"], "roles": ["support"],
                        "custom_field_keys": ["other"], "domains": ["other.example.test"],
                        "rest_routes": ["GET /api/v1/other"], "username_pattern": "zzz"}


def _rule(rid: str, effect: str, action: str, when: dict[str, Any]) -> str:
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in when.items())
    return (f'[[rule]]\nid = "{rid}"\neffect = "{effect}"\napps = ["agent-sync"]\n'
            f'actions = ["{action}"]\n[rule.when]\n{body}')


@pytest.mark.parametrize("action", sorted(SAMPLES))
@pytest.mark.parametrize("key", sorted(FORBID_MATCHES))
def test_a_forbid_is_narrowed_exactly_by_the_keys_that_concern_the_action(
        action: str, key: str) -> None:
    args, facts = SAMPLES[action]
    p = unlinted(_rule("allow", "permit", action, PERMIT_WHEN)
                 + _rule("stop", "forbid", action, {key: MISS[key]}))
    d = ask(p, action, args, facts)
    [forbid] = [r for r in p.rules if r.id == "stop"]
    narrowed = forbid_conditions(forbid, action)
    assert narrowed == ([key] if action in CONCERNS[key] else [])
    if narrowed:  # the forbid's key does not match the request: the permit decides
        assert d.allowed, (key, d)
    else:  # the key does not concern the action: the forbid refuses every call
        assert not d.allowed and d.rules == ("stop",), (key, d)
