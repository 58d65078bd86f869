"""What changes between two policies, both ways: each widening (NEW grants something OLD did
not), each narrowing (NEW takes something away) and each admin-class role NEW names (refused by
the engine whatever the file says), as one Change with the file:line:column it comes from.

Conservative: when a change cannot be judged (a different username pattern, a changed forbid),
it is reported as a widening. `diff` keeps its old meaning (widenings only); `compare` is both.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from policies.names import endpoint_matches, is_admin_class, normalize_role
from policies.policy import CompiledQuota, CompiledRule, Policy
from policies.source import SourceFile

Direction = Literal["widens", "narrows", "refused"]


@dataclass(frozen=True)
class Change:
    # widens: permit-added | constraint-widened | forbid-removed | quota-loosened | seats-raised
    # narrows: permit-removed | constraint-narrowed | forbid-added | quota-tightened |
    #          seats-lowered;  refused: admin-role-added
    kind: str
    app: str
    action: str
    detail: str
    direction: Direction = "widens"
    where: str = ""  # file:line:column of the text that makes the change ("" when unknown)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "direction": self.direction, "app": self.app,
                "action": self.action, "detail": self.detail, "where": self.where}

    def __str__(self) -> str:
        who = f"{self.app} {self.action}".strip()
        text = f"{self.kind}: {who}: {self.detail}" if who else f"{self.kind}: {self.detail}"
        return f"{self.where}: {text}" if self.where else text


class Places:
    """file:line:column of rules, quotas and the workspace table, by id (ids are unique in a
    loaded set: STK011/STK012). Empty when built from nothing (then every `where` is "")."""

    def __init__(self, sources: Iterable[SourceFile] = ()) -> None:
        self._at: dict[tuple[str, str], tuple[SourceFile, int]] = {}
        self._workspace: SourceFile | None = None
        for s in sources:
            if s.model is None:
                continue
            for i, r in enumerate(s.model.rule):
                self._at.setdefault(("rule", r.id), (s, i))
            for i, q in enumerate(s.model.quota):
                self._at.setdefault(("quota", q.id), (s, i))
            if s.model.workspace is not None and self._workspace is None:
                self._workspace = s

    def of(self, table: str, id_: str, *path: str, entry: str | None = None) -> str:
        hit = self._at.get((table, id_))
        if hit is None:
            return ""
        src, i = hit
        full: tuple[str | int, ...] = (table, i, *path)
        line, col = src.locator.entry(full, entry) if entry else src.locator.pos(full)
        return f"{src.name}:{line}:{col}" if line else src.name

    def workspace(self) -> str:
        s = self._workspace
        if s is None:
            return ""
        line, col = s.locator.pos(("workspace", "max_active_app_users"))
        return f"{s.name}:{line}:{col}" if line else s.name


# CompiledRule field -> the [rule.when] key it comes from (for locations).
_DIMS = {"user_types": "user_types", "roles": "roles", "field_keys": "custom_field_keys",
         "domains": "domains", "allow_private_hosts": "allow_private",
         "allow_private_ips": "allow_private", "rest_routes": "rest_routes",
         "rest_fields": "rest_fields"}
Pairs = dict[tuple[str, str], list[CompiledRule]]


def _pairs(p: Policy) -> Pairs:
    out: Pairs = {}
    for r in p.rules:
        if r.effect != "permit":
            continue
        for app in (["*"] if r.any_app else sorted(r.apps)):
            for a in r.actions:
                out.setdefault((app, a), []).append(r)
    return out


def _covering(pairs: Pairs, app: str, action: str) -> list[CompiledRule]:
    return pairs.get((app, action), []) + (pairs.get(("*", action), []) if app != "*" else [])


def _union(rules: list[CompiledRule], dim: str) -> set[str]:
    out: set[str] = set()
    for r in rules:
        v = getattr(r, dim)
        if v:
            out.update(str(x) for x in v)
    return out


def _domain_covered(entry: str, others: set[str]) -> bool:
    """Is a concrete `host:port` entry already reached by one of `others` (e.g. `host:*`)?"""
    host, _, port = entry.partition(":")
    if host.startswith("*") or not port.isdigit():
        return False
    return any(endpoint_matches(host, int(port), o, portless_is_any=False) for o in others)


def _added(dim: str, new: set[str], old: set[str]) -> list[str]:
    extra = new - old
    if dim == "domains":
        extra = {d for d in extra if not _domain_covered(d, old)}
    return sorted(extra)


def _entry_rule(rules: list[CompiledRule], dim: str, value: str) -> CompiledRule:
    return next((r for r in rules if value in {str(x) for x in getattr(r, dim) or ()}), rules[0])


def _pair_changes(op: Pairs, np: Pairs, places: tuple[Places, Places]) -> list[Change]:
    out: list[Change] = []
    for app, action in sorted(np):
        nrules, orules = _covering(np, app, action), _covering(op, app, action)
        if not orules:
            ids = ", ".join(sorted({r.id for r in nrules}))
            out.append(Change("permit-added", app, action, f"newly permitted by {ids}",
                              "widens", places[1].of("rule", nrules[0].id, "actions")))
            continue
        out.extend(_dim_changes(app, action, orules, nrules, places))
    for app, action in sorted(op):
        if not _covering(np, app, action):
            orules = _covering(op, app, action)
            ids = ", ".join(sorted({r.id for r in orules}))
            out.append(Change("permit-removed", app, action, f"no longer permitted (was {ids})",
                              "narrows", places[0].of("rule", orules[0].id, "actions")))
    return out


def _dim_changes(app: str, action: str, orules: list[CompiledRule], nrules: list[CompiledRule],
                 places: tuple[Places, Places]) -> list[Change]:
    out: list[Change] = []
    for dim, key in _DIMS.items():
        new, old = _union(nrules, dim), _union(orules, dim)
        sides: tuple[tuple[list[str], list[CompiledRule], Direction, Places], ...] = (
            (_added(dim, new, old), nrules, "widens", places[1]),
            (_added(dim, old, new), orules, "narrows", places[0]),
        )
        for values, rules, way, pl in sides:
            if values:
                r = _entry_rule(rules, dim, values[0])
                kind, verb = (("constraint-widened", "adds") if way == "widens"
                              else ("constraint-narrowed", "drops"))
                out.append(Change(kind, app, action, f"{dim} {verb} {values}", way,
                                  pl.of("rule", r.id, "when", key, entry=values[0])))
    n_any = [r for r in nrules if r.any_user]
    o_any = [r for r in orules if r.any_user]
    if n_any and not o_any:
        out.append(Change("constraint-widened", app, action, "any_user turned on", "widens",
                          places[1].of("rule", n_any[0].id, "when", "any_user")))
    elif o_any and not n_any:
        out.append(Change("constraint-narrowed", app, action, "any_user turned off", "narrows",
                          places[0].of("rule", o_any[0].id, "when", "any_user")))
    npat = {r.pattern.pattern if r.pattern else None for r in nrules}
    opat = {r.pattern.pattern if r.pattern else None for r in orules}
    if npat - opat:
        r = next(r for r in nrules if (r.pattern.pattern if r.pattern else None) in npat - opat)
        out.append(Change("constraint-widened", app, action,
                          f"username_pattern changed to {sorted(map(str, npat - opat))}",
                          "widens", places[1].of("rule", r.id, "when", "username_pattern")))
    return out


def _forbid_changes(old: Policy, new: Policy, places: tuple[Places, Places]) -> list[Change]:
    out: list[Change] = []
    of = {r.id: r for r in old.rules if r.effect == "forbid"}
    nf = {r.id: r for r in new.rules if r.effect == "forbid"}
    for r in of.values():
        apps = "*" if r.any_app else ",".join(sorted(r.apps))
        acts = ",".join(sorted(r.actions))
        if r.id not in nf:
            out.append(Change("forbid-removed", apps, acts, f"forbid {r.id} removed", "widens",
                              places[0].of("rule", r.id)))
        elif _forbid_key(nf[r.id]) != _forbid_key(r):
            out.append(Change("forbid-removed", apps, acts, f"forbid {r.id} changed (may "
                              "forbid less)", "widens", places[1].of("rule", r.id)))
    for r in nf.values():
        if r.id not in of:
            apps = "*" if r.any_app else ",".join(sorted(r.apps))
            out.append(Change("forbid-added", apps, ",".join(sorted(r.actions)),
                              f"forbid {r.id} added", "narrows", places[1].of("rule", r.id)))
    return out


def _quota_changes(old: Sequence[CompiledQuota], new: Sequence[CompiledQuota],
                   places: tuple[Places, Places]) -> list[Change]:
    out: list[Change] = []
    by_id = {q.id: q for q in new}
    old_ids = {q.id for q in old}

    def add(kind: str, q: CompiledQuota, detail: str, way: Direction, where: str) -> None:
        apps = "*" if q.any_app else ",".join(sorted(q.apps))
        out.append(Change(kind, apps, q.action, f"quota {q.id} {detail}", way, where))

    for q in old:
        n = by_id.get(q.id)
        if n is None:
            add("quota-loosened", q, "removed", "widens", places[0].of("quota", q.id))
            continue
        at = places[1].of
        if n.limit != q.limit:
            up = n.limit > q.limit
            add("quota-loosened" if up else "quota-tightened", q, f"limit "
                f"{'raised' if up else 'lowered'} {q.limit} -> {n.limit}",
                "widens" if up else "narrows", at("quota", q.id, "limit"))
        if n.window_s != q.window_s:
            short = n.window_s < q.window_s
            add("quota-loosened" if short else "quota-tightened", q, f"window "
                f"{'shortened' if short else 'lengthened'} {q.window_s}s -> {n.window_s}s",
                "widens" if short else "narrows", at("quota", q.id, "window"))
        if n.action != q.action or n.scope != q.scope:
            add("quota-loosened", q, f"now counts {n.action} per {n.scope} (was {q.action} per "
                f"{q.scope})", "widens", at("quota", q.id))
        lost = set() if n.any_app else (q.apps | ({"*"} if q.any_app else set())) - n.apps
        if lost:
            add("quota-loosened", q, f"no longer applies to {sorted(lost)}", "widens",
                at("quota", q.id, "apps"))
    for n in new:
        if n.id not in old_ids:
            add("quota-tightened", n, f"added: {n.limit} per {n.window_s}s", "narrows",
                places[1].of("quota", n.id))
    return out


def _seat_changes(old: int | None, new: int | None, places: tuple[Places, Places]
                  ) -> list[Change]:
    if old == new:
        return []
    if new is None:
        return [Change("seats-raised", "", "", "workspace seat ceiling removed", "widens",
                       places[0].workspace())]
    if old is None or new < old:
        was = "none" if old is None else str(old)
        return [Change("seats-lowered", "", "", f"workspace seat ceiling {was} -> {new}",
                       "narrows", places[1].workspace())]
    return [Change("seats-raised", "", "", f"workspace seat ceiling raised {old} -> {new}",
                   "widens", places[1].workspace())]


def _admin_roles(p: Policy) -> dict[tuple[str, str], str]:
    """(rule id, normalised role) -> the role as written, for admin-class roles in permits."""
    out: dict[tuple[str, str], str] = {}
    for _, pf in p.files:
        for r in pf.rule:
            if r.effect != "permit":
                continue
            for entry in r.when.roles or []:
                norm = normalize_role(entry)
                if norm is not None and is_admin_class(norm):
                    out[(r.id, norm)] = entry
    return out


def _admin_changes(old: Policy, new: Policy, places: tuple[Places, Places]) -> list[Change]:
    before = _admin_roles(old)
    return [Change("admin-role-added", "", "roles", f"rule {rid} names admin-class role "
                   f"{norm!r}: refused (the engine never lets an app grant it)", "refused",
                   places[1].of("rule", rid, "when", "roles", entry=written))
            for (rid, norm), written in sorted(_admin_roles(new).items())
            if (rid, norm) not in before]


def compare(old: Policy, new: Policy, old_places: Places | None = None,
            new_places: Places | None = None) -> list[Change]:
    """Every widening, narrowing and refused admin-class role between OLD and NEW."""
    places = (old_places or Places(), new_places or Places())
    return (_pair_changes(_pairs(old), _pairs(new), places)
            + _forbid_changes(old, new, places)
            + _quota_changes(old.quotas, new.quotas, places)
            + _seat_changes(old.seat_ceiling, new.seat_ceiling, places)
            + _admin_changes(old, new, places))


def diff(old: Policy, new: Policy) -> list[Change]:
    """Every access NEW grants that OLD did not (empty when NEW is no wider)."""
    return [c for c in compare(old, new) if c.direction == "widens"]


def _forbid_key(r: CompiledRule) -> tuple[Any, ...]:
    return (r.any_app, r.apps, r.actions, r.user_types, r.roles, r.field_keys, r.domains,
            r.rest_routes, r.rest_fields, r.pattern.pattern if r.pattern else None)
