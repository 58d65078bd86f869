"""`decide(policy, grants, req) -> Decision`: pure, deterministic, default deny.

Order of checks (each one can only refuse):
1. the action exists in the vocabulary, and its permission is in `grants` (permission_denied);
2. the arguments match the ActionSpec exactly (policy_denied, "invalid arguments");
3. built-in guardrails no file can lift (guardrail): admin-class / privileged / non-canonical
   roles, user type "app", another app's own user changed, a privileged user deactivated,
   unusual URLs and unreachable addresses, non-plain REST routes;
4. any matching forbid (policy_denied);
5. at least one matching permit whose constraints all hold, else policy_denied naming the
   nearest rules and the constraint that failed;
6. a role that is a power of its own (`vocabulary.ROLE_AMOUNTS_TO`: the livechat-agent role
   is being a livechat agent) given by roles.assign or users.create, or taken by roles.remove,
   passes the action it amounts to as well (its permission, rules and quotas; DESIGN rule 11).
The result never depends on rule order: rule ids in decisions are sorted.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.names import (
    HTTP_METHODS,
    endpoint_matches,
    is_admin_class,
    normalize_role,
    normalize_route,
)
from policies.netcheck import IPAddress, ParsedUrl, is_public, never_reachable, parse_ip, parse_url
from policies.pattern import full_match
from policies.policy import CompiledRule, Policy
from policies.types import Decision, DecisionCode, Request
from policies.vocabulary import ACTIONS, ROLE_AMOUNTS_TO, ActionSpec

# Actions on an existing user: only users the app created itself (or its own app user), unless
# the permit says any_user = true. Guards: an app promoting or deactivating human staff.
TARGET_USER_ACTIONS = frozenset(
    {
        "users.set_custom_fields",
        "users.deactivate",
        "roles.assign",
        "roles.remove",
        "livechat.add_agent",
        "livechat.remove_agent",
        "livechat.set_agent_status",
        "livechat.add_department_agent",
        "livechat.remove_department_agent",
        # Guards: an app speaking as a person. The server refuses any other user too, so
        # any_user cannot widen this one (the own-users rule is the permission's meaning).
        "messages.send_as_user",
    }
)
# Own-users actions `any_user` never widens (see above; lint STK026 calls it meaningless there):
# a widened allow would be audited as allowed and charged a quota unit for a call the server
# refuses anyway.
OWN_USERS_ALWAYS = frozenset({"messages.send_as_user"})
ROLE_ACTIONS = frozenset({"roles.assign", "roles.remove"})
# Own-users actions that change the user they name. Guards (a guardrail, whatever `any_user`
# says): another app's own user, that app's identity which only its install and uninstall
# manage (DESIGN rules 1 and 11; fact target_is_another_apps_user), and, for a deactivation, a
# user holding a privileged role, whose every power it would take (rule 10; fact
# target_holds_privileged_role). The host looks both up for every such call and its servers
# refuse the same behind the gate; a caller that supplies neither (a policy test case) is not
# refused by this step, so the gate must always supply them.
USER_CHANGE_ACTIONS = TARGET_USER_ACTIONS - OWN_USERS_ALWAYS
# The user a users.create is about to make, as the action it amounts to names it: it does not
# exist yet, and it will be this app's own (the facts say so).
NEW_USER = "(the user this call creates)"
FIELD_ACTIONS = frozenset({"users.create", "users.set_custom_fields"})

# Argument caps. Guards: regex matching cost (username) and per-call work (lists, maps).
MAX_USERNAME = 256
MAX_ROLES = 32
MAX_FIELDS = 64
MAX_ID = 256


def _deny(code: DecisionCode, message: str, rules: tuple[str, ...] = ()) -> Decision:
    return Decision(allowed=False, code=code, message=message, rules=rules)


class _Ctx:
    """What the engine extracted from a request once it passed the argument checks (a plain
    slotted class: built once a call, where a frozen dataclass costs a call ~1 µs more)."""

    __slots__ = ("field_keys", "ips", "own", "req", "roles", "route", "url", "user_type",
                 "username")

    def __init__(self, req: Request, *, roles: tuple[str, ...] = (),
                 user_type: str | None = None, field_keys: tuple[str, ...] = (),
                 username: str | None = None, url: ParsedUrl | None = None,
                 ips: tuple[IPAddress, ...] = (), own: frozenset[IPAddress] = frozenset(),
                 route: str | None = None) -> None:
        self.req = req
        self.roles = roles  # canonical, for users.create roles or roles.* role
        self.user_type = user_type
        self.field_keys = field_keys
        self.username = username
        self.url = url
        self.ips = ips
        self.own = own  # those of `ips` that are the host machine's own (fact own_ips)
        self.route = route


def _is_str_map(v: object) -> bool:
    # A dict (and a str key) is tested as one first, and the keys in a loop rather than a
    # generator: on every bridge call, the ABC check and the generator cost more than the keys.
    if type(v) is not dict and not isinstance(v, Mapping):
        return False
    for k in v:
        if type(k) is not str and not isinstance(k, str):
            return False
    return True


# Each action's argument names, required and optional, worked out once.
_KNOWN_ARGS = {name: frozenset(spec.args) | frozenset(spec.optional)
               for name, spec in ACTIONS.items()}


def _check_args(spec: ActionSpec, args: Mapping[str, Any]) -> str | None:
    """Exact shape: no unknown names (an app cannot say "as app X"), required ones present,
    the ones the engine reads of the right type."""
    if not _is_str_map(args):
        return "arguments must be a map of names to values"
    known = _KNOWN_ARGS.get(spec.name)
    if known is None or ACTIONS.get(spec.name) is not spec:  # a spec not the vocabulary's own
        known = frozenset(spec.args) | frozenset(spec.optional)
    if not known.issuperset(args):
        unknown = sorted(set(args) - known)
        return f"unknown argument(s) {unknown}; {spec.name} takes {sorted(known)}"
    for required in spec.args:  # a loop, not a list, on the way every allowed call takes
        if args.get(required) is None:
            missing = [a for a in spec.args if args.get(a) is None]
            return f"missing required argument(s) {missing}"
    for name, value in args.items():
        if name.endswith("_id") and value is not None:
            if not isinstance(value, str) or not value or len(value) > MAX_ID:
                return f"{name} must be a non-empty string"
    a = spec.name
    if a == "users.create":
        for k in ("username", "name", "type"):
            if not isinstance(args[k], str):
                return f"{k} must be a string"
        if len(args["username"]) > MAX_USERNAME:
            return f"username longer than {MAX_USERNAME} characters"
        roles = args.get("roles")
        if roles is not None and (
            not isinstance(roles, list | tuple)
            or len(roles) > MAX_ROLES
            or not all(isinstance(r, str) for r in roles)
        ):
            return f"roles must be a list of at most {MAX_ROLES} strings"
        cf = args.get("custom_fields")
        if cf is not None and (not _is_str_map(cf) or len(cf) > MAX_FIELDS):
            return f"custom_fields must be a map of at most {MAX_FIELDS} string keys"
    elif a == "users.set_custom_fields":
        if not _is_str_map(args["fields"]) or len(args["fields"]) > MAX_FIELDS:
            return f"fields must be a map of at most {MAX_FIELDS} string keys"
    elif a in ROLE_ACTIONS:
        if not isinstance(args["role"], str):
            return "role must be a string"
    elif a in ("http.request", "rest.call"):
        if not isinstance(args["method"], str):
            return "method must be a string"
        other = "url" if a == "http.request" else "route"
        if not isinstance(args[other], str):
            return f"{other} must be a string"
    return None


def _canonical_role(raw: str, facts: Mapping[str, Any]) -> tuple[str | None, str]:
    norm = normalize_role(raw)
    if norm is None:
        return None, (
            f"role {raw!r} is not a canonical role name (ASCII a-z 0-9 . _ - after NFKC and "
            "case folding); look-alike and invisible characters are refused"
        )
    if is_admin_class(norm):
        return None, f"role {norm!r} is admin-class: apps can never assign, remove or grant it"
    if norm != raw:
        return None, f"role {raw!r} must be written in canonical form {norm!r}"
    return norm, ""


def _guardrails(spec: ActionSpec, req: Request) -> _Ctx | str:
    """Built-in refusals no policy file can lift. Returns the extracted context or a reason."""
    args, facts, a = req.args, req.facts, spec.name
    if a in USER_CHANGE_ACTIONS:
        if facts.get("target_is_another_apps_user") is True:
            return "that is another app's own user: only its install and uninstall manage " \
                   "it (any_user reaches people, never another app)"
        if a == "users.deactivate" and facts.get("target_holds_privileged_role") is True:
            return "the user holds a privileged role: apps can never deactivate it (that " \
                   "takes every power of the role, as removing the role would)"
    if a == "users.create" or a in ROLE_ACTIONS:
        raw_roles: list[str] = (
            [args["role"]] if a in ROLE_ACTIONS else list(args.get("roles") or [])
        )
        roles: list[str] = []
        for raw in raw_roles:
            norm, why = _canonical_role(raw, facts)
            if norm is None:
                return why
            roles.append(norm)
        if roles:
            # The server knows roles a file cannot: custom roles holding admin permissions.
            priv = facts.get("role_privileged")
            if not isinstance(priv, bool):
                return "the host did not say whether the role is privileged (fact role_privileged)"
            if priv:
                return "the server marks this role privileged: apps can never grant it"
        user_type: str | None = None
        username: str | None = None
        keys: tuple[str, ...] = ()
        if a == "users.create":
            t = args["type"]
            tnorm = normalize_role(t)
            if tnorm is None or tnorm != t:
                return f"user type {t!r} is not a canonical name"
            if tnorm == "app":
                return "apps can never create users of type 'app' (that would be another app)"
            user_type = tnorm
            username = args["username"]
            keys = tuple(sorted(args.get("custom_fields") or {}))
        return _Ctx(req, roles=tuple(roles), user_type=user_type, username=username,
                    field_keys=keys)
    if a == "users.set_custom_fields":
        return _Ctx(req, field_keys=tuple(sorted(args["fields"])))
    if a == "http.request":
        if args["method"] not in HTTP_METHODS:
            return f"HTTP method {args['method']!r} is not one of {sorted(HTTP_METHODS)}"
        url = parse_url(args["url"])
        if isinstance(url, str):
            return url
        resolved = facts.get("resolved_ips")
        if not isinstance(resolved, list | tuple):
            return "the host did not supply the resolved addresses (fact resolved_ips)"
        ips: list[IPAddress] = [] if url.ip is None else [url.ip]
        for item in resolved:
            ip = parse_ip(item) if isinstance(item, str) else None
            if ip is None:
                return f"fact resolved_ips holds a non-address {item!r}"
            ips.append(ip)
        for ip in ips:
            if never_reachable(ip):
                return f"address {ip} (unspecified or multicast) is never reachable for apps"
        own: set[IPAddress] = set()
        own_ips = facts.get("own_ips", ())
        if not isinstance(own_ips, list | tuple):
            return "fact own_ips is not a list of addresses"
        for item in own_ips:
            ip = parse_ip(item) if isinstance(item, str) else None
            if ip is None:
                return f"fact own_ips holds a non-address {item!r}"
            own.add(ip)
        return _Ctx(req, url=url, ips=tuple(ips), own=frozenset(own))
    if a == "rest.call":
        route = normalize_route(args["method"], args["route"])
        if route is None:
            return "REST method or route is not plain (absolute path, no '..', '%', '?' or '#')"
        return _Ctx(req, route=route)
    return _Ctx(req)


def _own_target(rule: CompiledRule, req: Request) -> str | None:
    if rule.any_user and req.action not in OWN_USERS_ALWAYS:
        return None
    if req.facts.get("target_is_own_app_user") is True:
        return None
    created = req.facts.get("target_created_by_app")
    if isinstance(created, str) and created == req.app_id:
        return None
    if "target_created_by_app" not in req.facts and "target_is_own_app_user" not in req.facts:
        return "own users only: the host supplied no facts about the target user"
    if req.action in OWN_USERS_ALWAYS:
        return f"own users only: {req.action} speaks only as users this app created " \
               "(any_user does not widen it)"
    return "own users only: the target user was not created by this app (set any_user to widen)"


def _permit_failure(rule: CompiledRule, ctx: _Ctx) -> str | None:
    """The first constraint of a permit that does not hold, or None when all hold."""
    a = ctx.req.action
    if a == "users.create":
        if rule.user_types is None or ctx.user_type not in rule.user_types:
            return f"user_types: type {ctx.user_type!r} not listed"
        if rule.pattern_invalid:
            return "username_pattern does not compile"
        if rule.pattern is not None and (
            ctx.username is None or not full_match(rule.pattern, ctx.username)
        ):
            return f"username_pattern: {ctx.username!r} does not match"
    if ctx.roles:
        for r in ctx.roles:
            if rule.roles is None or r not in rule.roles:
                return f"roles: role {r!r} not listed"
    elif a in ROLE_ACTIONS:
        return "roles: no role given"
    if ctx.field_keys or a == "users.set_custom_fields":
        if not rule.field_keys and a == "users.set_custom_fields":
            # A missing or empty list allows nothing (README, lint STK028), an empty field map
            # too: `custom_field_keys = []` and no list at all mean the same (`policy diff`).
            return "custom_field_keys: none listed, so this rule never allows the action"
        for k in ctx.field_keys:
            if rule.field_keys is None or k not in rule.field_keys:
                return f"custom_field_keys: key {k!r} not listed"
    if a in TARGET_USER_ACTIONS:
        why = _own_target(rule, ctx.req)
        if why is not None:
            return why
    if a == "http.request":
        assert ctx.url is not None  # set by _guardrails for http.request
        host, port = ctx.url.host, ctx.url.port
        if rule.domains is None or not any(
            endpoint_matches(host, port, d, portless_is_any=False) for d in rule.domains
        ):
            return f"domains: {host}:{port} not listed"
        if not ctx.ips:
            # a listed name that resolves to nothing: nothing to connect to (and never allow
            # without the addresses, or the host could be steered by a later lookup)
            return f"host {host!r} did not resolve to any address"
        for ip in ctx.ips:
            # The host machine's own public address is no public service: whatever listens on
            # its wildcard address (a database, an admin port) answers there as on loopback.
            if is_public(ip) and ip not in ctx.own:
                continue
            if host in rule.allow_private_hosts or ip in rule.allow_private_ips:
                continue
            kind = "this machine's own" if ip in ctx.own else "private/loopback"
            return f"allow_private: address {ip} of {host!r} is {kind} and not named"
    if a == "rest.call":
        if rule.rest_routes is None or ctx.route not in rule.rest_routes:
            return f"rest_routes: {ctx.route!r} not listed"
        mapped = ctx.req.facts.get("rest_mapped")
        if not isinstance(mapped, bool):
            return "the host did not say whether the route amounts to a bridge action " \
                   "(fact rest_mapped)"
        if not mapped:
            # No bridge action's rules stand behind this route: the permit itself must bound
            # what the call may carry (DESIGN rule 11).
            if rule.rest_fields is None:
                return (f"rest_fields: {ctx.route!r} has no bridge action, so a permit must "
                        "list the fields it may carry")
            body = ctx.req.args.get("body")
            keys = sorted(body) if isinstance(body, Mapping) else []
            extra = [k for k in keys if k not in rule.rest_fields]
            if extra:
                return f"rest_fields: field(s) {extra[:8]} not listed"
    return None


def _forbid_applies(rule: CompiledRule, ctx: _Ctx) -> bool:
    """A forbid applies unless one of its constraints that concerns this action does not match.
    Constraints that do not concern the action (and any_user / allow_private) are ignored, which
    only makes the forbid broader."""
    a = ctx.req.action
    if a == "users.create":
        if rule.user_types is not None and ctx.user_type not in rule.user_types:
            return False
        if rule.pattern is not None and (
            ctx.username is None or not full_match(rule.pattern, ctx.username)
        ):
            return False
    if (a == "users.create" or a in ROLE_ACTIONS) and rule.roles is not None:
        if not any(r in rule.roles for r in ctx.roles):
            return False
    if a in FIELD_ACTIONS and rule.field_keys is not None:
        if not any(k in rule.field_keys for k in ctx.field_keys):
            return False
    if a == "http.request":
        assert ctx.url is not None
        if not _forbid_covers(rule, ctx.url):
            return False
    if a == "rest.call" and rule.rest_routes is not None and ctx.route not in rule.rest_routes:
        return False
    return True


def _forbid_covers(rule: CompiledRule, url: ParsedUrl) -> bool:
    """Whether an `http.request` forbid covers `url`: its `domains` name the host (a portless
    entry any port), or it has none and covers every request."""
    return rule.domains is None or any(
        endpoint_matches(url.host, url.port, d, portless_is_any=True) for d in rule.domains)


def lists_endpoint(policy: Policy, app_id: str, url: ParsedUrl) -> bool:
    """Whether a permit of `app_id`'s `http.request` lists the URL's host and port in its
    `domains` (as the permit's own check reads them). The host resolves a request's name
    (`resolved_ips`) only then: a lookup is a DNS query to whoever serves that name, made
    before the decision, so resolving any name an app asks for would let an app granted one
    domain send data out as names (`<secret>.attacker.example`) past the policy that refuses
    the request. A name no permit lists is refused on its domain whatever it resolves to.
    Nor one a forbid covers (`_forbid_covers`, as `_forbid_applies` reads it: its `domains`,
    or every request when it has none): a forbid beats any permit, so the request
    is refused whatever the name resolves to, and the operator who forbade a zone inside a
    permitted domain (one another DNS server answers for) forbade queries to it too."""
    forbids, permits = policy.plan(app_id, "http.request")
    if any(_forbid_covers(r, url) for r in forbids):
        return False
    return any(endpoint_matches(url.host, url.port, d, portless_is_any=False)
               for r in permits if r.domains is not None for d in r.domains)


def decide(policy: Policy, grants: frozenset[str], req: Request) -> Decision:
    """Decide one bridge call. Pure: no I/O, no clock; `req.now` is the only time."""
    decision = _decide_one(policy, grants, req)
    if not decision.allowed:
        return decision
    for role, inner in _amounts_to(req):
        also = _decide_one(policy, grants, inner)
        if not also.allowed:
            return _also_denied(req, role, inner, also)
        charges = {(c.key, c.quota_id): c for c in (*decision.quotas, *also.quotas)}
        decision = Decision(
            allowed=True, code="allow",
            message=f"{decision.message}; as {inner.action} {', '.join(also.rules)}",
            rules=tuple(sorted({*decision.rules, *also.rules})),
            quotas=tuple(sorted(charges.values(), key=lambda c: (c.key, c.quota_id))),
            seat_ceiling=decision.seat_ceiling)
    return decision


def _permission_denied(spec: ActionSpec) -> Decision:
    return _deny(
        "permission_denied",
        f"permission {spec.permission!r} is not granted to this install ({spec.name} needs "
        f"it). To get it, the app's manifest must ask for {spec.permission!r} and the "
        "operator must grant it (consent at install or update).",
    )


def _also_denied(req: Request, role: str, inner: Request, also: Decision) -> Decision:
    verb = "takes" if req.action == "roles.remove" else "gives"
    return _deny(also.code, f"{req.action} {verb} the role {role!r}, which amounts to "
                 f"{inner.action} and must pass it too: {also.message}", also.rules)


def unconditional_refusal(grants: frozenset[str], req: Request) -> Decision | None:
    """What `decide` refuses whatever the policy's rules and the host's facts say: an unknown
    action, a permission not granted, arguments of the wrong shape, and a role given or taken
    whose action (`ROLE_AMOUNTS_TO`) needs a permission not granted. None when none of these
    refuses. The app-author harness asks it when no policy file is loaded (the host always
    decides with one), so its tests meet these refusals as the host's apps do."""
    refused = _shape_refusal(grants, req)
    if refused is not None:
        return refused
    for role, inner in _amounts_to(req):
        inner_spec = ACTIONS[inner.action]
        if inner_spec.permission not in grants:
            return _also_denied(req, role, inner, _permission_denied(inner_spec))
    return None


def _amounts_to(req: Request) -> list[tuple[str, Request]]:
    """The actions a role given or taken by `req` amounts to (`ROLE_AMOUNTS_TO`), each as the
    request the engine decides beside it: the same app, target user and facts."""
    a, args = req.action, req.args
    if a in ROLE_ACTIONS:
        given = [args["role"]]  # canonical: the guardrails refuse any other spelling
        user, facts = args["user_id"], req.facts
    elif a == "users.create":
        given = list(args.get("roles") or [])
        user, facts = NEW_USER, {**req.facts, "target_created_by_app": req.app_id}
    else:
        return []
    out: list[tuple[str, Request]] = []
    for role in dict.fromkeys(given):
        actions = ROLE_AMOUNTS_TO.get(role)
        if actions is not None:
            action = actions[1] if a == "roles.remove" else actions[0]
            out.append((role, Request(req.app_id, req.install_id, action, {"user_id": user},
                                      facts, req.now)))
    return out


def _shape_refusal(grants: frozenset[str], req: Request) -> Decision | None:
    """The first steps of every decision: the action known, its permission granted, its
    arguments of the right shape. None when they pass."""
    spec = ACTIONS.get(req.action)
    if spec is None:
        return _deny("policy_denied", f"unknown action {req.action!r}: not in the vocabulary")
    if spec.permission not in grants:
        return _permission_denied(spec)
    problem = _check_args(spec, req.args)
    if problem is not None:
        return _deny("policy_denied", f"invalid arguments for {req.action}: {problem}")
    return None


def _decide_one(policy: Policy, grants: frozenset[str], req: Request) -> Decision:
    refused = _shape_refusal(grants, req)
    if refused is not None:
        return refused
    spec = ACTIONS[req.action]
    ctx = _guardrails(spec, req)
    if isinstance(ctx, str):
        return _deny("guardrail", ctx)
    forbid_rules, permit_rules = policy.plan(req.app_id, req.action)
    forbids = sorted(r.id for r in forbid_rules if _forbid_applies(r, ctx))
    if forbids:
        return _deny(
            "policy_denied",
            f"forbidden by rule(s) {', '.join(forbids)} (a forbid beats any permit)",
            tuple(forbids),
        )
    allowed: list[str] = []
    misses: list[tuple[str, str]] = []
    for r in permit_rules:
        why = _permit_failure(r, ctx)
        if why is None:
            allowed.append(r.id)
        else:
            misses.append((r.id, why))
    if allowed:
        return policy.allowed(req.app_id, req.install_id, req.action, tuple(sorted(allowed)))
    if misses:
        misses.sort()
        detail = "; ".join(f"rule {rid} failed {why}" for rid, why in misses)
        return _deny(
            "policy_denied",
            f"no permit rule allows {req.action} with these arguments: {detail}",
            tuple(rid for rid, _ in misses),
        )
    return _deny(
        "policy_denied",
        f"no rule permits app {req.app_id!r} to call {req.action} (permission "
        f"{spec.permission!r} is granted, but a policy rule must also permit the action)",
    )
