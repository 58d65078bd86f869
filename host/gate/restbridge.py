"""The REST bridge: `ctx.rest.call(method, route, body)` is a capability, not an admin key.

Steps (each refusal is audited with the route and raised to the app as an error):

1. a route in `policies.routes.NEVER` (credentials, admin-class roles, acting as a visitor) is
   refused whatever a policy lists; so is an unmapped route whose parameters name a role;
2. `rest.call` itself is decided: `server.rest` granted, a permit listing the route (and, for a
   route with no bridge action, the body fields it may carry: `rest_fields`);
3. a mapped route (`policies.restmap.MAPPED`) is translated into the bridge action it amounts to
   and decided by that action's rules through the gate's own steps: its permission, declared
   roles, own-users facts, argument rules and guardrails (admin-class roles), its quotas and
   the seat ceiling, then admitted, performed (server adapter, as the app) and recorded by
   the gate's own `_admit_and_call`: one code path for both doors. The quotas on `rest.call`
   itself are charged too (a key both name once);
   an install change committed after either decision is seen at the admission, and the call
   is then decided again, whole (`ledger.Stale`, `Gate.handle`), as it is when a policy reload
   lands between the two decisions (both are made on one revision);
4. an unmapped route runs through the server's REST dispatcher (the host action `rest.call`)
   as the app's own server user, or as the identity the operator named for that app;
5. the outcome record holds the route, the HTTP status and the server's refusal code: a 4xx or
   5xx is a refusal (`ok` false), never "ok".

The app gets `{"status": HTTP status, "body": Rocket.Chat-style body}` for whatever the server
answered, and a GateError for what the gate refused.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from host.apps.installs import InstallRecord
from host.errors import GateError, RefusalBudgetExceeded, ServerRefused
from host.gate.rest_routes import render
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import REFUNDABLE_ERRORS, Ledger, Stale
from host.ledger.quota import Charge
from host.server.principals import Caller
from host.server.rest import normalize_route
from host.server.rest_errors import rc_error
from host.store import Conn
from policies.policy import Policy
from policies.restmap import ByUsername, Refusal, plan_route, route_label, translate_route
from policies.types import Decision
from policies.vocabulary import ActionSpec


class Session(Protocol):
    """The parts of `gate.Session` the REST bridge reads (the gate imports this module, so
    this module names what it needs instead of importing the gate back)."""

    @property
    def app_id(self) -> str: ...
    @property
    def install_id(self) -> str: ...
    @property
    def caller(self) -> Caller: ...


class Installs(Protocol):
    def get(self, install_id: str) -> tuple[InstallRecord | None, int, int]: ...
    def version_in(self, conn: Conn) -> int: ...


class Policies(Protocol):
    def current(self) -> Policy: ...


class Gate(Protocol):
    """The gate's own steps, reused so a REST route is decided exactly as its bridge action."""

    @property
    def ledger(self) -> Ledger: ...
    @property
    def installs(self) -> Installs: ...
    @property
    def policy(self) -> Policies: ...
    @property
    def host_actions(self) -> Mapping[str, Callable[..., Any]]: ...

    def handle(self, session: Any, action: str, args: dict[str, Any]) -> Any: ...
    def _decide(self, session: Any, action: str, args: dict[str, Any],
                route: str | None = None, extra_facts: Mapping[str, Any] | None = None,
                ) -> tuple[ActionSpec, Decision, Policy, dict[str, Any], int]: ...
    def _refuse(self, session: Any, action: str, args: Mapping[str, Any], code: str,
                message: str, decision: Decision | None = None,
                policy: Policy | None = None, *, route: str | None = None) -> GateError: ...
    def _admit_and_call(self, session: Any, spec: ActionSpec, args: dict[str, Any],
                        decision: Decision, policy: Policy, facts: Mapping[str, Any], *,
                        version: int, route: str | None = None,
                        via: Decision | None = None) -> Any: ...
    def unadmitted(self, session: Any, action: str, args: Mapping[str, Any], exc: ValueError,
                   decision: Decision | None, policy: Policy, route: str | None,
                   ) -> GateError: ...
    def _count(self, allowed: bool) -> None: ...
    def _refusal_budget(self, install_id: str) -> Charge: ...

# HTTP statuses of a REST refusal after which the quota unit comes back: the dispatcher answers
# 400 (a bad parameter, an unknown id, a conflict), 404 (no such route) and 413 (body too
# large) before anything is written, and 503 only for a store that could not serve (full, locked
# past the wait, unreachable) when no write of the request committed (a handler that had
# committed a step answers 500: `host.server.rest_unavailable`). 401/403 keep the unit (a probe
# is charged, as a bridge call's permission_denied is); 500 keeps it (whether anything was
# applied is unknown).
REFUNDABLE_STATUS = frozenset({400, 404, 413, 503})


def rest_call(gate: Gate, session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Decide and perform one `rest.call` (see the module docstring)."""
    route = args.get("route")
    plan = plan_route(args)
    if isinstance(plan, Refusal):
        raise gate._refuse(session, "rest.call", args, plan.code, plan.message,
                           route=route_label(args))
    label, found = plan.label, plan.found
    _spec, rest_decision, rest_policy, _facts, rest_version = gate._decide(
        session, "rest.call", args, route=label,
        extra_facts={"rest_mapped": found is not None})
    if found is None:
        return _unmapped(gate, session, args, label, rest_decision, rest_policy, rest_version)
    mapped = found[0]
    translated = translate_route(plan, session.caller.app_user_id or "")
    if isinstance(translated, Refusal):
        raise gate._refuse(session, "rest.call", args, translated.code, translated.message,
                           route=label)
    action, bridge_args = translated
    for name, value in list(bridge_args.items()):
        if isinstance(value, ByUsername):
            # Naming a user by username is a users.get_by_username: decided and audited as one.
            user = gate.handle(session, "users.get_by_username", {"username": value.username})
            bridge_args[name] = user["id"]
    spec, decision, policy, facts, version = gate._decide(session, action, bridge_args,
                                                          route=label)
    if version != rest_version:
        raise Stale("the install changed between the route's decision and its action's")
    if policy.revision != rest_policy.revision:
        # A reload landed between the two: both are decided again on one revision, or a route
        # the new policy no longer lists would run on the old one's word.
        raise Stale("the policy changed between the route's decision and its action's")
    # The bridge call's own admission, dispatch and outcome: one code path for both doors.
    try:
        result = gate._admit_and_call(session, spec, bridge_args, decision, policy, facts,
                                      version=version, route=label, via=rest_decision)
    except ServerRefused as exc:
        # What the REST API itself would answer (Rocket.Chat's shapes), not the gate's codes.
        status, refusal = rc_error(exc.code, exc.message, normalize_route(str(route))[0])
        return {"status": status, "body": refusal}
    return {"status": 200, "body": {**render(mapped, result), "success": True}}


def _unmapped(gate: Gate, session: Session, args: dict[str, Any], label: str,
              decision: Decision, policy: Policy, version: int) -> dict[str, Any]:
    """A route with no bridge action, permitted by a rule that lists it and its fields: the
    server's REST dispatcher runs it as the app's own user (or the operator-named identity)."""
    host_action = gate.host_actions.get("rest.call")
    if host_action is None:
        raise gate._refuse(session, "rest.call", args, "permission_denied",
                           f"{label}: this host serves no REST routes without a bridge action",
                           route=label)
    installs = gate.installs
    install, _epoch, now_version = installs.get(session.install_id)
    if now_version != version:
        raise Stale("the install changed after the route's decision")
    named = install.rest_as if install is not None else None
    # Who the server will see, on the decision record: the identity the operator named for this
    # app at consent, or the app's own user.
    actor = f"user {named}" if named else f"app user {session.caller.app_user_id}"
    op_id = "op_" + secrets.token_hex(12)
    try:
        admission = gate.ledger.admit(AuditRecord(
            kind="decision", allowed=True, code="allow", rules=decision.rules,
            policy_rev=policy.revision,
            app_id=session.app_id, install_id=session.install_id, action="rest.call",
            args_digest=gate_digest(args), op_id=op_id, write=True, route=label,
            actor=actor[:128]), decision.quotas, None, None,
            gate._refusal_budget(session.install_id),
            lambda c: (installs.version_in(c) == version
                       and gate.policy.current().revision == policy.revision))
    except ValueError as exc:
        raise gate.unadmitted(session, "rest.call", args, exc, decision, policy,
                              label) from None
    if not admission.allowed:
        gate._count(False)
        error = RefusalBudgetExceeded if admission.over_budget else GateError
        raise error("quota_exceeded", admission.message or "quota exceeded")
    try:
        out = host_action(session, args, op_id, {"rest_as": named})
    except GateError as exc:
        gate.ledger.outcome(admission.seq, op_id, False, exc.code,
                            refund=exc.code in REFUNDABLE_ERRORS, route=label)
        gate._count(False)
        raise
    except Exception:  # noqa: BLE001 - any host-side failure is recorded and refused, not lost
        # The dispatcher catches its handlers' errors; anything here is the host's own fault,
        # and whether the server applied something is unknown: keep the units.
        gate.ledger.outcome(admission.seq, op_id, False, "internal", refund=False, route=label)
        gate._count(False)
        raise GateError("internal", f"{label} failed inside the host") from None
    status = int(out.get("status", 500)) if isinstance(out, Mapping) else 500
    payload = out.get("body") if isinstance(out, Mapping) else None
    ok = status < 400
    code = None
    if not ok:
        raw = payload.get("errorType") if isinstance(payload, Mapping) else None
        code = raw[:64] if isinstance(raw, str) and raw else f"http_{status}"
    gate.ledger.outcome(admission.seq, op_id, ok, code,
                        refund=(not ok) and status in REFUNDABLE_STATUS, status=status,
                        route=label)
    gate._count(ok)
    return {"status": status, "body": payload}


def gate_digest(args: Mapping[str, Any]) -> str:
    """The same digest the gate records for a bridge call's arguments."""
    return digest_args(args)
