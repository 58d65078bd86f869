"""`rest.call` in the author harness, decided as the gate's REST bridge decides it.

The steps and their order are `host/gate/restbridge.py`'s, reading the same table
(`policies.restmap`): the route's own refusals first (a route no app may ever reach, an unmapped
route whose body names a role, a body that is not an object), whatever the policy says; then,
under `use_policy`, `rest.call` itself is decided (fact `rest_mapped`: whether the route amounts
to a bridge action), and a mapped route is translated into its bridge action, whose users named
by username are looked up with a `users.get_by_username` bridge call (decided and charged like
any), and decided by that action's own grant, declared roles, facts and rules; the quotas of both
decisions are charged together, a key both name once. The answer is the test's `rest_responder`,
as without a policy: the harness serves no REST API, so a mapped route's action is decided but
not performed on the fake server.
"""
from __future__ import annotations

from typing import Any, Protocol

from policies.grants import grant_refusal
from policies.restmap import ByUsername, Refusal, plan_route, translate_route
from policies.vocabulary import ACTIONS
from sandbox import errors
from sandbox.harness_manifest import Manifest
from sandbox.harness_policy import PolicyCheck, seats_in_use
from sandbox.harness_server import FakeServer


class Harness(Protocol):
    """What the REST decision reads of `AppHarness` (which imports this module)."""

    app_id: str
    grants: frozenset[str]
    policy: PolicyCheck | None
    app_user: dict[str, Any]
    server: FakeServer
    now: float
    manifest: Manifest

    def call(self, action: str, args: dict[str, Any]) -> Any: ...


def _raise(refusal: Refusal) -> None:
    raise errors.ERRORS_BY_CODE.get(refusal.code, errors.PermissionDenied)(refusal.message)


def route_refusal(args: dict[str, Any]) -> None:
    """The REST bridge's refusals that no policy changes (step 1), raised as the app sees them."""
    plan = plan_route(args)
    if isinstance(plan, Refusal):
        _raise(plan)


def decide_rest(h: Harness, args: dict[str, Any]) -> list[str]:
    """Decide `rest.call` under `h.policy` as the gate does; returns the quota keys charged."""
    policy = h.policy
    assert policy is not None
    plan = plan_route(args)
    if isinstance(plan, Refusal):
        _raise(plan)
        raise AssertionError  # unreachable: _raise raises
    me = h.app_user["id"]
    via = policy.decision(h.app_id, h.grants, "rest.call", args,
                          {**policy.facts(h.server, me, "rest.call", args),
                           "rest_mapped": plan.found is not None}, h.now)
    if plan.found is None:
        return policy.charge(via, "rest.call", h.now, lambda: seats_in_use(h.server))
    translated = translate_route(plan, me)
    if isinstance(translated, Refusal):
        _raise(translated)
        raise AssertionError
    action, bridge_args = translated
    for name, value in list(bridge_args.items()):
        if isinstance(value, ByUsername):
            # A bridge call of its own, recorded in `h.calls` as the gate records and audits it.
            bridge_args[name] = h.call("users.get_by_username", {"username": value.username})["id"]
    spec = ACTIONS[action]
    problem = grant_refusal(h.app_id, h.grants, h.grants, h.manifest.declared_roles, spec,
                            bridge_args)
    if problem:
        raise errors.PermissionDenied(problem)
    facts = policy.facts(h.server, me, action, bridge_args)
    decision = policy.decision(h.app_id, h.grants, action, bridge_args, facts, h.now)
    return policy.charge(decision, action, h.now, lambda: seats_in_use(h.server), via=via)
