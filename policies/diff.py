"""What changes between two policies, both ways: each widening (NEW grants something OLD did
not), each narrowing (NEW takes something away) and each admin-class role NEW names (refused by
the engine whatever the file says), as one Change with the file:line:column it comes from.

Permits are compared one by one, for each app and action: a NEW permit is covered only by an
OLD permit at least as strict on every constraint together (roles with any_user, domains with
allow_private, routes with rest_fields...), one entry of its user types, roles, domains or
routes at a time, so that moving a setting from one permit to another is seen, and merging or
splitting permits is not taken for a change. A missing list and an empty one differ where the
engine reads them differently (rest_fields). The narrowings are the same comparison the other
way round.

Conservative: when a change cannot be judged (a different username pattern, a changed forbid, a
NEW permit only the union of several OLD ones would cover), it is reported as a widening.
`diff` keeps its old meaning (widenings only); `compare` is both.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from policies.engine import TARGET_USER_ACTIONS
from policies.names import WEB_PORTS, is_admin_class, normalize_role
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


# Each action's argument of which a request names exactly one value (one user type, one role,
# one host:port, one route), and the permit list that allows it. A permit allows the union of
# what it allows for each entry of that list, so permits are compared one entry at a time:
# merging two permits into one, or splitting one, is no widening.
_SLICED = {"users.create": "user_types", "roles.assign": "roles", "roles.remove": "roles",
           "http.request": "domains", "rest.call": "rest_routes"}
# The other lists a request must satisfy together with the rest of one permit (what the
# engine's `_permit_failure` reads for the action). For these a missing list and an empty one
# allow the same (nothing); rest_fields is apart (`_Comparer.joint_gaps`): absent refuses a
# route with no bridge action, [] allows one that carries no body fields.
_JOINT = {"users.create": ("roles", "field_keys"), "users.set_custom_fields": ("field_keys",),
          "http.request": ("allow_private_hosts", "allow_private_ips")}
# Permit comparisons one `compare` makes at most (one permit against one other of the same app
# and action, weighed by the entries it reads). Guards: a hostile NEW file (thousands of
# permits on one app and action) keeping a reviewer's `policy diff` busy for minutes. Past it,
# a permit not yet shown covered is reported as a change that was not compared: never a
# silent "nothing".
MAX_COMPARISONS = 3_000_000
# OLD permits searched for the nearest one to explain a change by (when none has the same id).
# Guards: the explanation's cost; any permit gives a true explanation, the nearest a short one.
_NEAREST = 32


@dataclass(frozen=True)
class _Gap:
    """One way a permit allows more than another: `dim` (a CompiledRule list) adds `values`;
    or "any_user" turned on, "username_pattern" other or gone, "rest_fields_set" (a list where
    the other permit has none at all)."""

    dim: str
    values: tuple[str, ...] = ()


# One permit the other side does not cover: its gaps against the nearest permit there (None
# when the bound ran out before it was compared) and whether some gap is only in the
# combination (each setting is in some permit there, never all of them in one).
_Outcome = tuple[CompiledRule, list[_Gap] | None, bool]


def _pattern(r: CompiledRule) -> str | None:
    return r.pattern.pattern if r.pattern else None


def _allows_nothing(r: CompiledRule, action: str) -> bool:
    """A permit the engine never lets through for `action` (its required list missing or
    empty, or a username pattern that does not compile): it covers nothing."""
    dim = _SLICED.get(action)
    if dim is not None and not getattr(r, dim):
        return True
    return action == "users.create" and r.pattern_invalid


def _within(entry: str, reach: frozenset[Any]) -> bool:
    """Does one entry of `reach` reach every host:port the `domains` entry reaches (in a
    permit: no port = the web ports, `:*` = every port, `*.s` = sub-domains of s)? A union of
    entries (`:80` and `:443` for a portless one) is not looked for: that case is reported."""
    if entry in reach:
        return True
    host, _, port = entry.partition(":")
    labels = (host[2:] if host.startswith("*.") else host).split(".")
    hosts = [host] + ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
    if port == "*":
        ports = ["*"]
    elif not port:
        ports = ["", "*"]
    else:
        ports = [port, "*"] + ([""] if int(port) in WEB_PORTS else [])
    return any((h if not p else f"{h}:{p}") in reach for h in hosts for p in ports)


def _reached(action: str, value: str, reach: frozenset[Any]) -> bool:
    return _within(value, reach) if action == "http.request" else value in reach


def _say(g: _Gap, way: Direction) -> str:
    wide = way == "widens"
    if g.dim == "any_user":
        return "any_user turned on" if wide else "any_user turned off"
    if g.dim == "username_pattern":
        return (f"username_pattern changed to {list(g.values)}" if wide
                else f"username_pattern changed (was {list(g.values)})")
    if g.dim == "rest_fields_set":
        return (f"rest_fields set to {list(g.values)} (was absent: a route with no bridge "
                "action was refused)" if wide else f"rest_fields removed (was "
                f"{list(g.values)}): a route with no bridge action is refused")
    return f"{g.dim} {'adds' if wide else 'drops'} {list(g.values)}"


def _context(n: CompiledRule, action: str, gaps: list[_Gap]) -> str:
    """The settings of `n` that open what its gaps add (any_user, allow_private, rest_fields)."""
    dims = {g.dim for g in gaps}
    out = []
    if action in TARGET_USER_ACTIONS and n.any_user and "any_user" not in dims:
        out.append("any_user = true")
    private = sorted(n.allow_private_hosts) + sorted(map(str, n.allow_private_ips))
    if action == "http.request" and private and not dims & set(_JOINT[action]):
        out.append(f"allow_private = {private}")
    if action == "rest.call" and n.rest_fields is not None and not dims & {
            "rest_fields", "rest_fields_set"}:
        out.append(f"rest_fields = {sorted(n.rest_fields)}")
    return f": {'; '.join(out)}" if out else ""


class _Comparer:
    """Permits compared one by one for one `compare`: each rule's sets built once, the outcome
    of one list of permits against another reused for every app that has the same lists, and
    the work bounded (MAX_COMPARISONS)."""

    def __init__(self) -> None:
        self.left = MAX_COMPARISONS
        self._sets: dict[tuple[int, str], frozenset[Any]] = {}
        self._done: dict[tuple[Any, ...], list[_Outcome]] = {}

    def entries(self, r: CompiledRule, dim: str) -> frozenset[Any]:
        key = (id(r), dim)  # rules live as long as the policies being compared
        got = self._sets.get(key)
        if got is None:
            got = self._sets[key] = frozenset(getattr(r, dim) or ())
        return got

    def joint_gaps(self, o: CompiledRule, n: CompiledRule, action: str) -> list[_Gap]:
        """How permit `n` allows more than permit `o` for `action`, in every constraint but
        its sliced list (none: `o` is at least as strict on all of them together)."""
        gaps = []
        for dim in _JOINT.get(action, ()):
            extra = self.entries(n, dim) - self.entries(o, dim)
            if extra:
                gaps.append(_Gap(dim, tuple(sorted(map(str, extra)))))
        if action == "users.create" and (
                o.pattern_invalid or (o.pattern is not None and _pattern(o) != _pattern(n))):
            gaps.append(_Gap("username_pattern", (str(_pattern(n)),)))
        if action == "rest.call" and n.rest_fields is not None:
            if o.rest_fields is None:
                gaps.append(_Gap("rest_fields_set", tuple(sorted(n.rest_fields))))
            elif n.rest_fields - o.rest_fields:
                gaps.append(_Gap("rest_fields", tuple(sorted(n.rest_fields - o.rest_fields))))
        if action in TARGET_USER_ACTIONS and n.any_user and not o.any_user:
            gaps.append(_Gap("any_user"))
        return gaps

    def joint_covers(self, o: CompiledRule, n: CompiledRule, action: str) -> bool:
        """`joint_gaps(o, n, action)` is empty, without building it (the search's hot path)."""
        if _allows_nothing(o, action):
            return False
        for dim in _JOINT.get(action, ()):
            if not self.entries(n, dim) <= self.entries(o, dim):
                return False
        if action == "users.create" and o.pattern is not None and _pattern(o) != _pattern(n):
            return False
        if action == "rest.call" and n.rest_fields is not None and (
                o.rest_fields is None or not n.rest_fields <= o.rest_fields):
            return False
        return not (action in TARGET_USER_ACTIONS and n.any_user and not o.any_user)

    def outcome(self, action: str, mine: list[CompiledRule], theirs: list[CompiledRule]
                ) -> list[_Outcome]:
        """Each permit of `mine` that allows something no one permit of `theirs` allows."""
        key = (action, tuple(map(id, mine)), tuple(map(id, theirs)))
        found = self._done.get(key)
        if found is None:
            found = self._done[key] = self._outcome(action, mine, theirs)
        return found

    def _outcome(self, action: str, mine: list[CompiledRule], theirs: list[CompiledRule]
                 ) -> list[_Outcome]:
        live = [o for o in theirs if not _allows_nothing(o, action)]
        twins: dict[str, CompiledRule] = {}
        for o in theirs:
            twins.setdefault(o.id, o)
        out: list[_Outcome] = []
        pooled: dict[str, frozenset[str]] = {}  # each list of `theirs`, all entries together
        for n in mine:
            if _allows_nothing(n, action):
                continue
            twin = twins.get(n.id)
            if twin is not None and self._missing(action, n, [twin]) == []:
                continue  # the same rule, no wider: the common case, without a search
            missing = self._missing(action, n, live)
            if missing is None:
                out.append((n, None, False))
            elif missing:
                gaps = self._explain(action, n, missing, theirs, twin)
                out.append((n, gaps, any(self._seen_apart(action, g, theirs, pooled)
                                          for g in gaps)))
        return out

    def _missing(self, action: str, n: CompiledRule, live: list[CompiledRule]
                 ) -> list[str] | None:
        """The entries of `n`'s sliced list that no permit of `live` covers together with the
        rest of `n` ([""] for an action without one, when none covers `n`); None when the
        bound ran out first."""
        weight = 1 + sum(len(self.entries(n, d)) for d in _JOINT.get(action, ()))
        joint = []
        for o in live:
            self.left -= weight
            if self.left < 0:
                return None
            if self.joint_covers(o, n, action):
                joint.append(o)
        dim = _SLICED.get(action)
        if dim is None:
            return [] if joint else [""]
        sets = [self.entries(o, dim) for o in joint]
        self.left -= sum(map(len, sets))
        reach = frozenset().union(*sets)
        return sorted(v for v in map(str, self.entries(n, dim)) if not _reached(action, v, reach))

    def _explain(self, action: str, n: CompiledRule, missing: list[str],
                 theirs: list[CompiledRule], twin: CompiledRule | None) -> list[_Gap]:
        """What `n` allows beyond the nearest permit of `theirs` (the one of the same id, else
        the one with the fewest gaps): never empty, for what `_missing` found."""
        pool = [twin] if twin is not None else theirs[:_NEAREST]
        o = min(pool, key=lambda o: (len(self.joint_gaps(o, n, action)), o.id))
        gaps: list[_Gap] = []
        dim = _SLICED.get(action)
        if dim is not None:
            reach = frozenset() if _allows_nothing(o, action) else self.entries(o, dim)
            outside = tuple(v for v in missing if not _reached(action, v, reach))
            if outside:
                gaps.append(_Gap(dim, outside))
        return gaps + self.joint_gaps(o, n, action)

    def _seen_apart(self, action: str, g: _Gap, theirs: list[CompiledRule],
                    pooled: dict[str, frozenset[str]]) -> bool:
        """Does some permit of `theirs` already have what `g` adds (so the gap is only in the
        combination, which comparing each setting apart would miss)?"""
        if g.dim == "any_user":
            return any(o.any_user for o in theirs)
        if g.dim == "username_pattern":
            return g.values[0] in {str(_pattern(o)) for o in theirs}
        if g.dim == "rest_fields_set":
            return any(o.rest_fields is not None for o in theirs)
        reach = pooled.get(g.dim)
        if reach is None:
            reach = pooled[g.dim] = frozenset(
                str(x) for o in theirs for x in self.entries(o, g.dim))
        return all(_reached(action, v, reach) if g.dim == _SLICED.get(action) else v in reach
                   for v in g.values)

    def changes(self, app: str, action: str, mine: list[CompiledRule],
                theirs: list[CompiledRule], way: Direction, places: Places) -> list[Change]:
        """One change per permit of `mine` no permit of `theirs` covers (`theirs` not empty),
        located at what the permit adds, in its own file."""
        out: list[Change] = []
        kind = "constraint-widened" if way == "widens" else "constraint-narrowed"
        other = "OLD" if way == "widens" else "NEW"
        for n, gaps, apart in self.outcome(action, mine, theirs):
            if gaps is None:
                out.append(Change(kind, app, action, f"rule {n.id} was not compared with every "
                                  f"{other} permit (the diff's bound of {MAX_COMPARISONS:,} "
                                  f"comparisons ran out): counted as a change", way,
                                  places.of("rule", n.id)))
                continue
            text = "; ".join(_say(g, way) for g in gaps)
            if apart:
                text += (f" ({'OLD allowed' if way == 'widens' else 'NEW allows'} that only in "
                         f"other permits, never together with the rest of rule "
                         f"{n.id}{_context(n, action, gaps)})")
            first = gaps[0]
            key = _DIMS.get(first.dim, first.dim)
            key = {"rest_fields_set": "rest_fields"}.get(key, key)
            entry = first.values[0] if first.dim in _DIMS and first.values else None
            out.append(Change(kind, app, action, text, way,
                              places.of("rule", n.id, "when", key, entry=entry)))
        return out


def _pair_changes(op: Pairs, np: Pairs, places: tuple[Places, Places]) -> list[Change]:
    out: list[Change] = []
    cmp = _Comparer()
    for app, action in sorted(set(op) | set(np)):
        nrules, orules = np.get((app, action), []), op.get((app, action), [])
        ncover, ocover = _covering(np, app, action), _covering(op, app, action)
        if nrules and not ocover:
            ids = ", ".join(sorted({r.id for r in ncover}))
            out.append(Change("permit-added", app, action, f"newly permitted by {ids}",
                              "widens", places[1].of("rule", nrules[0].id, "actions")))
        elif nrules:
            out.extend(cmp.changes(app, action, nrules, ocover, "widens", places[1]))
        if orules and not ncover:
            ids = ", ".join(sorted({r.id for r in ocover}))
            out.append(Change("permit-removed", app, action, f"no longer permitted (was {ids})",
                              "narrows", places[0].of("rule", orules[0].id, "actions")))
        elif orules:
            out.extend(cmp.changes(app, action, orules, ncover, "narrows", places[0]))
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
