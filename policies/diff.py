"""Does NEW grant anything OLD did not? Each widening is listed as one Change.

Conservative: when a change cannot be judged (a different username pattern), it is reported.
A change that only narrows (a new forbid, a lower limit) is not listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.policy import CompiledQuota, CompiledRule, Policy


@dataclass(frozen=True)
class Change:
    kind: str  # permit-added | constraint-widened | forbid-removed | quota-loosened | seats-raised
    app: str
    action: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "app": self.app, "action": self.action, "detail": self.detail}

    def __str__(self) -> str:
        who = f"{self.app} {self.action}".strip()
        return f"{self.kind}: {who}: {self.detail}" if who else f"{self.kind}: {self.detail}"


_DIMS = ("user_types", "roles", "field_keys", "domains", "allow_private_hosts",
         "allow_private_ips", "rest_routes", "rest_fields")


def _pairs(p: Policy) -> dict[tuple[str, str], list[CompiledRule]]:
    out: dict[tuple[str, str], list[CompiledRule]] = {}
    for r in p.rules:
        if r.effect != "permit":
            continue
        for app in (["*"] if r.any_app else sorted(r.apps)):
            for a in r.actions:
                out.setdefault((app, a), []).append(r)
    return out


def _covering(pairs: dict[tuple[str, str], list[CompiledRule]], app: str, action: str
              ) -> list[CompiledRule]:
    return pairs.get((app, action), []) + (pairs.get(("*", action), []) if app != "*" else [])


def _union(rules: list[CompiledRule], dim: str) -> set[str]:
    out: set[str] = set()
    for r in rules:
        v = getattr(r, dim)
        if v:
            out.update(str(x) for x in v)
    return out


def _quota_changes(old: tuple[CompiledQuota, ...], new: tuple[CompiledQuota, ...]
                   ) -> list[Change]:
    out: list[Change] = []
    by_id = {q.id: q for q in new}
    for q in old:
        n = by_id.get(q.id)
        apps = "*" if q.any_app else ",".join(sorted(q.apps))
        if n is None:
            out.append(Change("quota-loosened", apps, q.action, f"quota {q.id} removed"))
            continue
        if n.limit > q.limit:
            out.append(Change("quota-loosened", apps, q.action,
                              f"quota {q.id} limit raised {q.limit} -> {n.limit}"))
        if n.window_s < q.window_s:
            out.append(Change("quota-loosened", apps, q.action,
                              f"quota {q.id} window shortened {q.window_s}s -> {n.window_s}s"))
        if n.action != q.action or n.scope != q.scope:
            out.append(Change("quota-loosened", apps, q.action,
                              f"quota {q.id} now counts {n.action} per {n.scope} "
                              f"(was {q.action} per {q.scope})"))
        lost = set() if n.any_app else (q.apps | ({"*"} if q.any_app else set())) - n.apps
        if lost:
            out.append(Change("quota-loosened", apps, q.action,
                              f"quota {q.id} no longer applies to {sorted(lost)}"))
    return out


def diff(old: Policy, new: Policy) -> list[Change]:
    """Every access NEW grants that OLD did not (empty when NEW is no wider)."""
    out: list[Change] = []
    op, np = _pairs(old), _pairs(new)
    for app, action in sorted(np):
        nrules = _covering(np, app, action)
        orules = _covering(op, app, action)
        if not orules:
            ids = ", ".join(sorted({r.id for r in nrules}))
            out.append(Change("permit-added", app, action, f"newly permitted by {ids}"))
            continue
        for dim in _DIMS:
            added = _union(nrules, dim) - _union(orules, dim)
            if added:
                out.append(Change("constraint-widened", app, action,
                                  f"{dim} adds {sorted(added)}"))
        if any(r.any_user for r in nrules) and not any(r.any_user for r in orules):
            out.append(Change("constraint-widened", app, action, "any_user turned on"))
        npat = {r.pattern.pattern if r.pattern else None for r in nrules}
        opat = {r.pattern.pattern if r.pattern else None for r in orules}
        if npat - opat:
            out.append(Change("constraint-widened", app, action,
                              f"username_pattern changed to {sorted(map(str, npat - opat))}"))
    nf = {r.id: r for r in new.rules if r.effect == "forbid"}
    for r in old.rules:
        if r.effect != "forbid":
            continue
        apps = "*" if r.any_app else ",".join(sorted(r.apps))
        acts = ",".join(sorted(r.actions))
        if r.id not in nf:
            out.append(Change("forbid-removed", apps, acts, f"forbid {r.id} removed"))
        elif _forbid_key(nf[r.id]) != _forbid_key(r):
            out.append(Change("forbid-removed", apps, acts, f"forbid {r.id} changed (may "
                              "forbid less)"))
    out.extend(_quota_changes(old.quotas, new.quotas))
    if old.seat_ceiling is not None:
        if new.seat_ceiling is None:
            out.append(Change("seats-raised", "", "", "workspace seat ceiling removed"))
        elif new.seat_ceiling > old.seat_ceiling:
            out.append(Change("seats-raised", "", "", f"workspace seat ceiling raised "
                              f"{old.seat_ceiling} -> {new.seat_ceiling}"))
    return out


def _forbid_key(r: CompiledRule) -> tuple[Any, ...]:
    return (r.any_app, r.apps, r.actions, r.user_types, r.roles, r.field_keys, r.domains,
            r.rest_routes, r.rest_fields, r.pattern.pattern if r.pattern else None)
