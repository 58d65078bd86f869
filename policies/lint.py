"""Semantic lint over validated policy files: every finding at once, each with a line and column.

Shape errors (types, unknown keys) come from the loader; this module judges meaning: unknown
names, wildcards, missing quotas, admin-class roles, risky patterns, rules that cannot matter.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence

from policies.findings import Finding, Severity, finding
from policies.model import PolicyFile, Rule
from policies.names import (
    is_admin_class,
    normalize_domain_pattern,
    normalize_host_pattern,
    normalize_role,
    parse_route_entry,
)
from policies.netcheck import is_public, parse_ip
from policies.pattern import PatternError, compile_pattern
from policies.policy import expand_actions
from policies.quota import MAX_QUOTA_LIMIT, MAX_SEATS, MAX_WINDOW_S
from policies.routes import never
from policies.source import SourceFile
from policies.vocabulary import ACTIONS, PERMISSIONS, ROLE_AMOUNTS_TO

# A quota limit, window or seat ceiling past the quota store's bounds (policies.quota) is an
# error (STK019): the store would refuse every call under it. Above this a seat ceiling the
# store can keep is still almost surely a typo (a warning). Guards: a "cap" that is no cap.
ABSURD_SEATS = 1_000_000
LOW_RISK = frozenset(p.name for p in PERMISSIONS.values() if p.risk == "low")

# Which actions each `when` key concerns (for STK026 and the engine's matching).
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
FORBID_MEANINGLESS = ("any_user", "allow_private")
# Write actions that change who can do what: a permit without a quota is flagged (STK033).
PRIVILEGE_ACTIONS = frozenset({"roles.assign", "users.deactivate"})


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`; did you mean 'users.create'?` for a near miss, else nothing."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _rule_findings(src: SourceFile, i: int, rule: Rule) -> list[Finding]:
    name, loc = src.name, src.locator
    out: list[Finding] = []

    def at(*path: str | int) -> tuple[int, int]:
        return loc.pos(("rule", i, *path))

    def item(value: str, *path: str | int) -> tuple[int, int]:
        return loc.entry(("rule", i, *path), value)

    for n in rule.actions:
        if n != "*" and n not in ACTIONS and n not in PERMISSIONS:
            out.append(finding("STK010", name, item(n, "actions"),
                               f"rule {rule.id}: unknown action "
                               f"or permission {n!r}{did_you_mean(n, [*ACTIONS, *PERMISSIONS])}"))
    actions = expand_actions(rule.actions)
    if "*" in rule.actions:
        out.append(finding("STK015", name, at("actions"), f"rule {rule.id}: actions = \"*\" "
                           "covers every action, including critical ones; list them"))
    if "*" in rule.apps and rule.effect == "permit":
        perms = {ACTIONS[a].permission for a in actions}
        if perms <= LOW_RISK:
            out.append(finding("STK014", name, at("apps"), f"rule {rule.id}: applies to every "
                               "app (low-risk actions only)", severity="warning"))
        else:
            risky = sorted(perms - LOW_RISK)
            out.append(finding("STK014", name, at("apps"), f"rule {rule.id}: permits every app "
                               f"actions of {risky}; name the apps"))
    w = rule.when
    set_keys = [k for k in CONCERNS if getattr(w, k) not in (None, False)]
    for k in set_keys:
        if actions and not (CONCERNS[k] & actions):
            out.append(finding("STK026", name, at("when", k), f"rule {rule.id}: {k} concerns "
                               f"none of this rule's actions"))
        if rule.effect == "forbid" and k in FORBID_MEANINGLESS:
            out.append(finding("STK031", name, at("when", k), f"rule {rule.id}: {k} means "
                               "nothing in a forbid and is ignored"))
    if rule.effect == "permit":
        for a in sorted(actions):
            need = REQUIRED_LIST.get(a)
            if need and getattr(w, need) is None:
                out.append(finding("STK028", name, at("actions"), f"rule {rule.id}: {a} is "
                                   f"never allowed without `{need}` in [rule.when]"))
        if w.any_user and CONCERNS["any_user"] & actions:
            # Written for named apps, any_user is the operator's own explicit widening (the
            # disclosure shows it): worth a warning, not a refusal. For every app it is
            # an accident waiting to happen, and the load is refused.
            wide: Severity = "security-warning" if "*" in rule.apps else "warning"
            out.append(finding("STK027", name, at("when", "any_user"), f"rule {rule.id}: "
                               "any_user = true lets the app act on users it did not create",
                               severity=wide))
    for k in ("roles", "user_types"):
        for entry in getattr(w, k) or []:
            norm = normalize_role(entry)
            if norm is None:
                out.append(finding("STK025", name, item(entry, "when", k),
                                   f"rule {rule.id}: {entry!r} "
                                   "is not a canonical ASCII name"))
            elif k == "roles" and is_admin_class(norm) and rule.effect == "permit":
                out.append(finding("STK020", name, item(entry, "when", k), f"rule {rule.id}: role "
                                   f"{norm!r} is admin-class; apps can never grant it"))
            elif k == "user_types" and norm == "app" and rule.effect == "permit":
                out.append(finding("STK025", name, item(entry, "when", k),
                                   f"rule {rule.id}: apps can "
                                   "never create users of type 'app'"))
    for d in w.domains or []:
        norm = normalize_domain_pattern(d)
        if norm is None:
            out.append(finding("STK025", name, item(d, "when", "domains"),
                               f"rule {rule.id}: domain "
                               f"{d!r} is not a host name or *.suffix, with an optional :port "
                               "or :*"))
        elif norm.endswith(":*") and rule.effect == "permit":
            out.append(finding("STK034", name, item(d, "when", "domains"), f"rule {rule.id}: "
                               f"{d!r} reaches every port (every service) on the host"))
    for r in w.rest_routes or []:
        canon = parse_route_entry(r)
        if canon is None:
            out.append(finding("STK025", name, item(r, "when", "rest_routes"), f"rule {rule.id}: "
                               f"route {r!r} is not \"METHOD /plain/path\""))
            continue
        method, _, path = canon.partition(" ")
        why = never(method, path)
        if why is not None and rule.effect == "permit":
            out.append(finding("STK035", name, item(r, "when", "rest_routes"), f"rule {rule.id}: "
                               f"{canon} is never reachable by apps ({why}); this entry allows "
                               "nothing"))
    for entry in w.allow_private or []:
        ip = parse_ip(entry)
        if ip is None and (
            normalize_host_pattern(entry) is None or entry.startswith("*")
        ):
            out.append(finding("STK025", name, item(entry, "when", "allow_private"),
                               f"rule {rule.id}: "
                               f"{entry!r} is neither an IP address nor a host name"))
        elif ip is not None and not is_public(ip):
            sev: Severity = "warning" if ip.is_link_local else "suggestion"
            extra = " (link-local: cloud metadata services live here)" if ip.is_link_local else ""
            out.append(finding("STK023", name, item(entry, "when", "allow_private"),
                               f"rule {rule.id}: "
                               f"allows private address {ip}{extra}", severity=sev))
        elif ip is None:
            out.append(finding("STK023", name, item(entry, "when", "allow_private"),
                               f"rule {rule.id}: "
                               f"host {entry!r} may reach private addresses"))
    if w.username_pattern is not None:
        try:
            compile_pattern(w.username_pattern)
        except PatternError as exc:
            out.append(finding("STK022", name, at("when", "username_pattern"),
                               f"rule {rule.id}: {exc}"))
    return out


def _file_findings(src: SourceFile, pf: PolicyFile) -> list[Finding]:
    out: list[Finding] = []
    for i, rule in enumerate(pf.rule):
        out.extend(_rule_findings(src, i, rule))
    for i, q in enumerate(pf.quota):
        if q.action != "*" and q.action not in ACTIONS:
            out.append(finding("STK010", src.name, src.locator.pos(("quota", i, "action")),
                               f"quota {q.id}: unknown action {q.action!r}"
                               f"{did_you_mean(q.action, list(ACTIONS))} (use an action name "
                               "or \"*\")"))
        if q.limit <= 0:
            out.append(finding("STK017", src.name, src.locator.pos(("quota", i, "limit")),
                               f"quota {q.id}: limit {q.limit} admits nothing; forbid instead"))
        elif q.limit > MAX_QUOTA_LIMIT:
            out.append(finding("STK019", src.name, src.locator.pos(("quota", i, "limit")),
                               f"quota {q.id}: limit {q.limit} is over {MAX_QUOTA_LIMIT:,}, "
                               "more than the host's quota store keeps"))
        secs = q.seconds
        wline = src.locator.pos(("quota", i, "window" if q.window is not None else "window_s"))
        if secs <= 0:
            out.append(finding("STK018", src.name, wline, f"quota {q.id}: window must be > 0"))
        elif secs > MAX_WINDOW_S:
            out.append(finding("STK019", src.name, wline, f"quota {q.id}: window longer than "
                               f"366 days ({MAX_WINDOW_S} s), more than the host's quota store "
                               "keeps"))
    if pf.workspace is not None and pf.workspace.max_active_app_users is not None:
        c = pf.workspace.max_active_app_users
        line = src.locator.pos(("workspace", "max_active_app_users"))
        if c < 0:
            out.append(finding("STK018", src.name, line, "max_active_app_users is negative"))
        elif c > MAX_SEATS:
            out.append(finding("STK019", src.name, line, f"max_active_app_users {c} is over "
                               f"{MAX_SEATS:,}, more than the host's seat check accepts"))
        elif c > ABSURD_SEATS:
            out.append(finding("STK019", src.name, line, f"max_active_app_users {c} is no cap",
                               severity="warning"))
    return out


def _covers(apps: Sequence[str], app: str) -> bool:
    return "*" in apps or app in apps


def _set_findings(sources: Sequence[SourceFile]) -> list[Finding]:
    out: list[Finding] = []
    rules = [(s, i, r) for s in sources if s.model for i, r in enumerate(s.model.rule)]
    quotas = [(s, i, q) for s in sources if s.model for i, q in enumerate(s.model.quota)]
    seen: dict[str, str] = {}
    for s, i, r in rules:
        if r.id in seen:
            out.append(finding("STK011", s.name, s.locator.pos(("rule", i, "id")),
                               f"rule id {r.id!r} already used in {seen[r.id]}"))
        seen.setdefault(r.id, s.name)
    qseen: dict[str, str] = {}
    for s, i, q in quotas:
        if q.id in qseen:
            out.append(finding("STK012", s.name, s.locator.pos(("quota", i, "id")),
                               f"quota id {q.id!r} already used in {qseen[q.id]}"))
        qseen.setdefault(q.id, s.name)
    permits = [(r.apps, expand_actions(r.actions)) for _, _, r in rules if r.effect == "permit"]

    def quota_for(app_list: Sequence[str], action: str) -> bool:
        for _, _, q in quotas:
            if q.action not in (action, "*") or q.limit <= 0:
                continue
            if "*" in q.apps or all(a in q.apps for a in app_list if a != "*"):
                if "*" in app_list and "*" not in q.apps:
                    continue
                return True
        return False

    for s, i, r in rules:
        if r.effect != "permit":
            continue
        acts = expand_actions(r.actions)
        if "users.create" in acts and not quota_for(r.apps, "users.create"):
            out.append(finding("STK013", s.name, s.locator.pos(("rule", i, "actions")),
                               f"rule {r.id}: permits users.create (billed seats) with no quota "
                               "covering every app it names"))
        for a in sorted(acts & PRIVILEGE_ACTIONS):
            if not quota_for(r.apps, a):
                out.append(finding("STK033", s.name, s.locator.pos(("rule", i, "actions")),
                                   f"rule {r.id}: permits {a} with no quota"))
    out.extend(_role_power_findings(rules, permits))
    for s, i, r in rules:
        if r.effect != "forbid":
            continue
        acts = expand_actions(r.actions)
        shadows = any(
            acts & pacts and ("*" in r.apps or "*" in papps or set(r.apps) & set(papps))
            for papps, pacts in permits
        )
        if not shadows:
            out.append(finding("STK024", s.name, s.locator.pos(("rule", i)),
                               f"forbid {r.id} matches no permit (it changes nothing today)",
                               severity="suggestion"))
    for s, i, q in quotas:
        if q.action == "*":
            continue
        if not any(
            q.action in pacts and ("*" in q.apps or "*" in papps or set(q.apps) & set(papps))
            for papps, pacts in permits
        ):
            out.append(finding("STK016", s.name, s.locator.pos(("quota", i, "action")),
                               f"quota {q.id}: no rule permits {q.action} for these apps"))
    keys: dict[tuple[str, str, str], str] = {}
    for s, i, q in quotas:
        for app in q.apps if q.scope != "workspace" else ["-"]:
            k = (q.scope, app, q.action)
            if k in keys and keys[k] != q.id:
                out.append(finding("STK030", s.name, s.locator.pos(("quota", i)),
                                   f"quota {q.id} counts the same calls as {keys[k]}; each "
                                   "keeps its own counter and both bind: merge "
                                   "them for clarity"))
            keys.setdefault(k, q.id)
    ceilings = [
        (s, s.model.workspace.max_active_app_users)
        for s in sources
        if s.model and s.model.workspace and s.model.workspace.max_active_app_users is not None
    ]
    if len({c for _, c in ceilings}) > 1:
        low = min(c for _, c in ceilings)
        for s, c in ceilings:
            out.append(finding("STK029", s.name, s.locator.pos(("workspace",)),
                               f"max_active_app_users = {c} conflicts; the smallest ({low}) "
                               "applies"))
    return out


def _role_power_findings(rules: Sequence[tuple[SourceFile, int, Rule]],
                         permits: Sequence[tuple[Sequence[str], frozenset[str]]]
                         ) -> list[Finding]:
    """STK036: a permit lists a role that is a power of its own (`ROLE_AMOUNTS_TO`) for an app
    no permit lets do what that role amounts to: the engine refuses the role every time."""
    out: list[Finding] = []
    for s, i, r in rules:
        if r.effect != "permit" or not r.when.roles:
            continue
        acts = expand_actions(r.actions)
        for role in r.when.roles:
            powers = ROLE_AMOUNTS_TO.get(role)
            if powers is None:
                continue
            needed = ({powers[0]} if acts & {"roles.assign", "users.create"} else set()) | (
                {powers[1]} if "roles.remove" in acts else set())
            for action in sorted(needed):
                missing = [a for a in r.apps if not any(
                    action in pacts and ("*" in papps or a in papps) for papps, pacts in permits)]
                if missing:
                    out.append(finding(
                        "STK036", s.name, s.locator.pos(("rule", i, "when", "roles")),
                        f"rule {r.id}: the role {role!r} is being a livechat agent, so giving or "
                        f"taking it is {action} too, which no permit allows for "
                        f"{', '.join(missing)}: the role is refused every time"))
    return out


def lint_set(sources: Sequence[SourceFile]) -> list[Finding]:
    """All semantic findings for a set of parsed files (loaded together as one policy)."""
    out: list[Finding] = []
    for s in sources:
        if s.model is not None:
            out.extend(_file_findings(s, s.model))
    out.extend(_set_findings(sources))
    return out
