"""A loaded policy: one or more validated files merged and compiled for fast, pure decisions.

Compilation normalises every list once (roles, domains, routes, regex), expands permission names
into their actions and indexes rules by action, so `decide` does lookups only.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.model import PolicyFile, Rule, When
from policies.names import (
    is_admin_class,
    normalize_domain_pattern,
    normalize_host_pattern,
    normalize_role,
    parse_route_entry,
)
from policies.netcheck import IPAddress, parse_ip
from policies.pattern import Pattern, PatternBudget, PatternError
from policies.types import Decision, QuotaCharge, QuotaScope
from policies.vocabulary import ACTIONS, PERMISSIONS

# `Policy._worked`: entries kept per policy object before it starts again (an entry is a plan, a
# charge tuple or an allow decision per app, install and action; 200 apps use a few thousand).
MAX_WORKED = 16_384


@dataclass(frozen=True)
class CompiledRule:
    id: str
    effect: str
    any_app: bool
    apps: frozenset[str]
    actions: frozenset[str]  # expanded action names ("*" expanded to all)
    user_types: frozenset[str] | None
    roles: frozenset[str] | None  # normalised; admin-class and invalid entries dropped
    field_keys: frozenset[str] | None
    any_user: bool
    domains: tuple[str, ...] | None
    allow_private_hosts: frozenset[str]
    allow_private_ips: frozenset[IPAddress]
    rest_routes: frozenset[str] | None
    rest_fields: frozenset[str] | None
    pattern: Pattern | None
    pattern_invalid: bool  # a pattern that does not compile: permits never match, forbids do
    source: str

    def applies_to_app(self, app_id: str) -> bool:
        return self.any_app or app_id in self.apps


@dataclass(frozen=True)
class CompiledQuota:
    id: str
    any_app: bool
    apps: frozenset[str]
    action: str  # action name or "*"
    limit: int
    window_s: int
    scope: QuotaScope
    source: str

    def key(self, app_id: str, install_id: str) -> str:
        """This quota's counter for one app install: its scope's subject, its action and its
        own id, nothing else. Guards DESIGN rule 8: a key that also depended on the other
        quotas (once suffixed with the id only when two quotas met on one key) counted one
        workspace limit on two rings, and moved a quota to a fresh ring when a reload added
        another on its action."""
        if self.scope == "install":
            subject = install_subject(install_id)
        elif self.scope == "app":
            subject = f"app:{app_id}"
        else:
            subject = "workspace"
        return f"{subject}:{self.action}#{self.id}"


def install_subject(install_id: str) -> str:
    """What starts every key of a quota scoped to one install (`CompiledQuota.key`): an
    uninstall removes the rings under it (`host.ledger.quota.drop_rings_in`)."""
    return f"install:{install_id}"


@dataclass(frozen=True)
class Policy:
    """Everything `decide` needs. Build with `compile_policy` (or policies.loader)."""

    names: tuple[str, ...]
    rules: tuple[CompiledRule, ...]
    quotas: tuple[CompiledQuota, ...]
    seat_ceiling: int | None
    revision: str
    files: tuple[tuple[str, PolicyFile], ...] = ()
    by_action: Mapping[str, tuple[CompiledRule, ...]] = field(default_factory=dict)
    # What `plan`, `charges` and `allowed` worked out, per app (and install) and action: a pure
    # function of this policy, which is never changed (a reload builds a new one). Not a memo
    # of decisions: every call still runs its argument checks, guardrails and each rule's
    # constraints (`policies.engine`).
    _worked: dict[tuple[str, ...], Any] = field(default_factory=dict, compare=False,
                                                 repr=False, hash=False)

    def rules_for(self, action: str) -> tuple[CompiledRule, ...]:
        """Rules whose actions include `action` (any effect, any app)."""
        return self.by_action.get(action, ())

    def plan(self, app_id: str, action: str) -> tuple[tuple[CompiledRule, ...],
                                                      tuple[CompiledRule, ...]]:
        """The forbids and the permits of `rules_for(action)` that apply to `app_id`, each in
        rule order."""
        key = ("plan", app_id, action)
        found = self._worked.get(key)
        if found is None:
            rules = [r for r in self.rules_for(action) if r.applies_to_app(app_id)]
            found = (tuple(r for r in rules if r.effect == "forbid"),
                     tuple(r for r in rules if r.effect == "permit"))
            self._remember(key, found)
        return found

    def charges(self, app_id: str, install_id: str, action: str) -> tuple[QuotaCharge, ...]:
        """The quota charges one call of `action` by this app install makes, sorted by key and
        quota id. Each quota has a ring of its own (`CompiledQuota.key`): two quotas on one
        action never share a log, and a quota's ring never depends on which others apply."""
        key = ("charges", app_id, install_id, action)
        found = self._worked.get(key)
        if found is None:
            out = [QuotaCharge(q.key(app_id, install_id), q.limit, q.window_s, q.scope, q.id)
                   for q in self.quotas
                   if (q.any_app or app_id in q.apps) and q.action in ("*", action)]
            found = tuple(sorted(out, key=lambda c: (c.key, c.quota_id)))
            self._remember(key, found)
        return found

    def allowed(self, app_id: str, install_id: str, action: str,
                rules: tuple[str, ...]) -> Decision:
        """The allow decision for a call these permit rules (sorted ids) all let through: the
        same immutable answer each time, with the call's charges and (for users.create) the
        seat ceiling. Only the engine asks, once every check of the call has passed."""
        key = ("allowed", app_id, install_id, action, *rules)
        found = self._worked.get(key)
        if found is None:
            found = Decision(
                allowed=True, code="allow", message=f"permitted by rule(s) {', '.join(rules)}",
                rules=rules, quotas=self.charges(app_id, install_id, action),
                seat_ceiling=self.seat_ceiling if action == "users.create" else None)
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[str, ...], value: object) -> None:
        # Keys come from installed apps and the vocabulary's actions (the engine refuses any
        # other action first), so this stays small; the bound guards memory all the same.
        if len(self._worked) >= MAX_WORKED:
            self._worked.clear()
        self._worked[key] = value


def expand_actions(names: Sequence[str]) -> frozenset[str]:
    """Action names as listed; a name that is not an action but a permission means all of its
    actions; "*" means every action. Action names win (roles.assign is narrower than the
    permission of the same name, which also covers roles.remove)."""
    out: set[str] = set()
    for n in names:
        if n == "*":
            out.update(ACTIONS)
        elif n in ACTIONS:
            out.add(n)
        elif n in PERMISSIONS:
            out.update(a.name for a in ACTIONS.values() if a.permission == n)
    return frozenset(out)


def _opt_set(items: list[str] | None) -> frozenset[str] | None:
    return None if items is None else frozenset(items)


def _compile_rule(rule: Rule, source: str, patterns: PatternBudget) -> CompiledRule:
    w: When = rule.when
    roles: frozenset[str] | None = None
    if w.roles is not None:
        norm = (normalize_role(r) for r in w.roles)
        roles = frozenset(r for r in norm if r is not None and not is_admin_class(r))
    types: frozenset[str] | None = None
    if w.user_types is not None:
        tnorm = (normalize_role(t) for t in w.user_types)
        types = frozenset(t for t in tnorm if t is not None and t != "app")
    domains: tuple[str, ...] | None = None
    if w.domains is not None:
        dn = (normalize_domain_pattern(d) for d in w.domains)
        domains = tuple(sorted({d for d in dn if d is not None}))
    ap_hosts: set[str] = set()
    ap_ips: set[IPAddress] = set()
    for entry in w.allow_private or []:
        ip = parse_ip(entry)
        if ip is not None:
            ap_ips.add(ip)
        else:
            h = normalize_host_pattern(entry)
            if h is not None and not h.startswith("*."):
                ap_hosts.add(h)
    routes: frozenset[str] | None = None
    if w.rest_routes is not None:
        rn = (parse_route_entry(r) for r in w.rest_routes)
        routes = frozenset(r for r in rn if r is not None)
    pattern: Pattern | None = None
    invalid = False
    if w.username_pattern is not None:
        try:
            # A forbid's pattern matches regardless of case: the server's usernames are unique
            # regardless of case (`policies.pattern.compile_pattern`).
            pattern = patterns.compile(w.username_pattern, fold=rule.effect == "forbid")
        except PatternError:  # never matches in a permit, matches any name in a forbid
            invalid = True
    return CompiledRule(
        id=rule.id,
        effect=rule.effect,
        any_app="*" in rule.apps,
        apps=frozenset(rule.apps),
        actions=expand_actions(rule.actions),
        user_types=types,
        roles=roles,
        field_keys=_opt_set(w.custom_field_keys),
        any_user=w.any_user,
        domains=domains,
        allow_private_hosts=frozenset(ap_hosts),
        allow_private_ips=frozenset(ap_ips),
        rest_routes=routes,
        rest_fields=_opt_set(w.rest_fields),
        pattern=pattern,
        pattern_invalid=invalid,
        source=source,
    )


def canonical_data(pf: PolicyFile) -> dict[str, Any]:
    """Order-free canonical form of one file (lists that are sets sorted, rules by id)."""

    def rule_d(r: Rule) -> dict[str, Any]:
        d = r.model_dump(mode="json", exclude_none=True)
        d["apps"] = sorted(set(r.apps))
        d["actions"] = sorted(set(r.actions))
        when = {k: (sorted(set(v)) if isinstance(v, list) else v) for k, v in d["when"].items()}
        d["when"] = when
        return d

    quotas = []
    for q in pf.quota:
        qd = q.model_dump(mode="json", exclude_none=True, exclude={"window", "window_s"})
        qd["apps"] = sorted(set(q.apps))
        qd["window_s"] = q.seconds
        quotas.append(qd)
    return {
        "schema": pf.schema_version,
        "name": pf.name,
        "description": pf.description,
        "workspace": None if pf.workspace is None else pf.workspace.model_dump(mode="json"),
        "rule": sorted((rule_d(r) for r in pf.rule), key=lambda d: str(d["id"])),
        "quota": sorted(quotas, key=lambda d: str(d["id"])),
    }


def revision_of(files: Sequence[PolicyFile]) -> str:
    """sha256 over the canonical form of every file; independent of file and rule order,
    comments and formatting."""
    digests = sorted(
        hashlib.sha256(
            json.dumps(canonical_data(pf), sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        for pf in files
    )
    return "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()


def compile_policy(files: Sequence[tuple[str, PolicyFile]]) -> Policy:
    """Merge validated files into one Policy (union of rules and quotas; the smallest workspace
    ceiling wins). Does not lint: callers that read files use policies.loader, which refuses a
    set of files with any error finding before compiling."""
    # One pattern budget for the set, spent in the lint's order (`policies.lint`): a set the
    # loader refuses for it is still compiled within it (`policy diff` compares such a NEW).
    patterns = PatternBudget()
    rules = tuple(_compile_rule(r, src, patterns) for src, pf in files for r in pf.rule)
    quotas = tuple(
        CompiledQuota(
            id=q.id,
            any_app="*" in q.apps,
            apps=frozenset(q.apps),
            action=q.action,
            limit=q.limit,
            window_s=q.seconds,
            scope=q.scope,
            source=src,
        )
        for src, pf in files
        for q in pf.quota
    )
    ceilings = [
        pf.workspace.max_active_app_users
        for _, pf in files
        if pf.workspace is not None and pf.workspace.max_active_app_users is not None
    ]
    index: dict[str, list[CompiledRule]] = {}
    for r in rules:
        for a in r.actions:
            index.setdefault(a, []).append(r)
    return Policy(
        names=tuple(sorted(pf.name for _, pf in files)),
        rules=rules,
        quotas=quotas,
        seat_ceiling=min(ceilings) if ceilings else None,
        revision=revision_of([pf for _, pf in files]),
        files=tuple(files),
        by_action={k: tuple(v) for k, v in index.items()},
    )
