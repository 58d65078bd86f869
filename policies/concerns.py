"""Which `when` keys concern which actions: the engine's reading, in one table.

The engine (`policies.engine`) reads a key of a rule's `when` only for the actions listed here:
`_permit_failure` for a permit, `_forbid_applies` for a forbid (which never reads the keys in
FORBID_MEANINGLESS). Lint (STK026, STK028, STK031, STK037, STK038) and `can-i --list` ask this
module, and tests/policies/test_policy_concerns.py holds it to the engine's decisions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from policies.policy import CompiledRule

CONCERNS: dict[str, frozenset[str]] = {
    "user_types": frozenset({"users.create"}),
    "roles": frozenset({"users.create", "roles.assign", "roles.remove"}),
    "custom_field_keys": frozenset({"users.create", "users.set_custom_fields"}),
    "any_user": frozenset(
        {
            "users.set_custom_fields", "users.deactivate", "roles.assign", "roles.remove",
            "livechat.add_agent", "livechat.remove_agent", "livechat.set_agent_status",
            "livechat.add_department_agent", "livechat.remove_department_agent",
        }
    ),
    "domains": frozenset({"http.request"}),
    "allow_private": frozenset({"http.request"}),
    "rest_routes": frozenset({"rest.call"}),
    "rest_fields": frozenset({"rest.call"}),
    "username_pattern": frozenset({"users.create"}),
}
# A permit on these actions allows nothing unless the list is given (default deny on arguments).
REQUIRED_LIST: dict[str, str] = {
    "users.create": "user_types",
    "roles.assign": "roles",
    "roles.remove": "roles",
    "users.set_custom_fields": "custom_field_keys",
    "http.request": "domains",
    "rest.call": "rest_routes",
}
# Keys a forbid never reads (they only ever widen a permit).
FORBID_MEANINGLESS = ("any_user", "allow_private", "rest_fields")
# Lists a forbid matches a request by (the engine's `_forbid_applies`): empty, the forbid
# matches no request of the actions the list concerns, so it forbids none of them (STK037).
FORBID_LISTS = ("user_types", "roles", "custom_field_keys", "domains", "rest_routes")
# Every key a forbid matches a request by, and the CompiledRule field holding it.
FORBID_MATCHES: dict[str, str] = {
    "user_types": "user_types", "roles": "roles", "custom_field_keys": "field_keys",
    "domains": "domains", "rest_routes": "rest_routes", "username_pattern": "pattern",
}


def forbid_conditions(rule: CompiledRule, action: str) -> list[str]:
    """The `when` keys that narrow forbid `rule` for `action`. None: the forbid refuses every
    call of `action` by the apps it names, whatever the arguments and facts."""
    return [k for k, attr in FORBID_MATCHES.items()
            if action in CONCERNS[k] and getattr(rule, attr) is not None]
