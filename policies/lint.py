"""Semantic lint over validated policy files: every finding at once, each with a line and column.

Shape errors (types, unknown keys) come from the loader; this module judges meaning: unknown
names, wildcards, missing quotas, admin-class roles, risky patterns, rules that cannot matter.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

from policies.argrules import FIELD_KEY_RE
from policies.concerns import CONCERNS, FORBID_LISTS, FORBID_MEANINGLESS, REQUIRED_LIST
from policies.findings import Finding, Severity, finding
from policies.locate import _AOT, _KEY, _MAX_ARRAY_LINES, _TABLE, Pos
from policies.model import PolicyFile, Quota, Rule
from policies.names import (
    is_admin_class,
    normalize_domain_pattern,
    normalize_host_pattern,
    normalize_role,
    parse_route_entry,
)
from policies.netcheck import is_public, parse_ip
from policies.pattern import PatternBudget, PatternError
from policies.policy import expand_actions
from policies.quota import MAX_QUOTA_LIMIT, MAX_SEATS, MAX_WINDOW_S
from policies.recordfit import record_fit_findings
from policies.routes import never
from policies.source import SourceFile
from policies.vocabulary import ACTIONS, IMPERSONATING_ROLES, PERMISSIONS, ROLE_AMOUNTS_TO

# A quota limit, window or seat ceiling past the quota store's bounds (policies.quota) is an
# error (STK019): the store would refuse every call under it. Above this a seat ceiling the
# store can keep is still almost surely a typo (a warning). Guards: a "cap" that is no cap.
ABSURD_SEATS = 1_000_000
LOW_RISK = frozenset(p.name for p in PERMISSIONS.values() if p.risk == "low")
KNOWN_NAMES = (*ACTIONS, *PERMISSIONS)
KNOWN_ACTIONS = tuple(ACTIONS)

# Write actions that change who can do what: a permit without a quota is flagged (STK033).
PRIVILEGE_ACTIONS = frozenset({"roles.assign", "users.deactivate"})


# Unknown names one lint run suggests a near miss for (STK010's "did you mean"). Guards: each
# suggestion compares the name with every known one (about a millisecond); a file listing
# thousands of made-up names took seconds per thousand. Past it the finding has no suggestion.
MAX_SUGGESTIONS = 100
# Text `EntryPlaces` may scan for entries with a quote in them (others need no scan), per
# character of the file. Guards: one scan per such entry (DESIGN rule 13); past it, such an
# entry is located at its key.
SLOW_ENTRY_SCAN_PER_CHAR = 4


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`; did you mean 'users.create'?` for a near miss, else nothing."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Run:
    """What one lint run works out once for all its files: each unknown name's suggestion (at
    most MAX_SUGGESTIONS of them) and each username pattern's verdict (a compile that fails
    costs RE2 milliseconds, and nothing of it is kept: a file repeating one such pattern
    thousands of times took seconds)."""

    def __init__(self) -> None:
        self._hints: dict[tuple[str, tuple[str, ...]], str] = {}
        self._patterns = PatternBudget()

    def hint(self, name: str, known: tuple[str, ...]) -> str:
        key = (name, known)
        got = self._hints.get(key)
        if got is None:
            got = did_you_mean(name, known) if len(self._hints) < MAX_SUGGESTIONS else ""
            self._hints[key] = got
        return got

    def pattern_error(self, text: str, *, fold: bool) -> str | None:
        """Why `text` does not compile, or None; `fold` as `compile_policy` compiles it (a
        forbid's pattern regardless of case), so both spend the set's budget alike."""
        try:
            self._patterns.compile(text, fold=fold)
        except PatternError as exc:
            return str(exc)
        return None


class EntryPlaces:
    """`Locator.entry` for every entry a lint run locates in one file, with the same answers.

    The locator scans an array's text once per entry it is asked about: a file whose one long
    line held thousands of bad entries took that scan thousands of times (quadratic, DESIGN
    rule 13). Here each array is scanned once, into the first position of every text between
    two quotes of the same kind: for an entry with no quote character in it that is exactly
    where the locator's search for `"entry"` or `'entry'` stops. An entry with a quote in it
    (rare, and never a valid name) is left to the locator, within a budget of text scanned
    (SLOW_ENTRY_SCAN_PER_CHAR); past it, it is located at its key. It reads the locator's own
    line patterns and array reach, so it scans exactly the lines the locator would."""

    def __init__(self, src: SourceFile) -> None:
        self._loc = src.locator
        self._lines = src.text.splitlines()
        self._arrays: dict[tuple[str | int, ...], tuple[dict[str, Pos], int]] = {}
        self._slow_left = SLOW_ENTRY_SCAN_PER_CHAR * (len(src.text) + 1024)

    def entry(self, path: tuple[str | int, ...], value: str) -> Pos:
        found = self._arrays.get(path)
        if found is None:
            found = self._arrays[path] = self._scan(path)
        index, span = found
        if '"' not in value and "'" not in value:
            return index.get(value) or self._loc.pos(path)
        self._slow_left -= span
        if self._slow_left < 0:
            return self._loc.pos(path)
        return self._loc.entry(path, value)

    def _scan(self, path: tuple[str | int, ...]) -> tuple[dict[str, Pos], int]:
        """Each text between two quotes of one kind in the array at `path` (the lines
        `Locator.entry` searches), at its first position; and the characters of those lines."""
        at = self._loc.pos(path)
        index: dict[str, Pos] = {}
        span = 0
        if not at[0]:
            return index, span
        for lineno in range(at[0], min(at[0] + _MAX_ARRAY_LINES, len(self._lines) + 1)):
            text = self._lines[lineno - 1]
            if lineno > at[0] and (_KEY.match(text) or _TABLE.match(text) or _AOT.match(text)):
                break
            span += len(text) + 1
            start = text.find("=") + 1 if lineno == at[0] else 0
            here: dict[str, int] = {}
            for q in ('"', "'"):
                i = text.find(q, start)
                while i >= 0:
                    j = text.find(q, i + 1)
                    if j < 0:
                        break
                    between = text[i + 1:j]
                    if here.get(between, j) > i:
                        here[between] = i
                    i = j
            for between, col in here.items():
                index.setdefault(between, (lineno, col + 1))
        return index, span


def _rule_findings(src: SourceFile, i: int, rule: Rule, places: EntryPlaces,
                   run: _Run) -> list[Finding]:
    name, loc = src.name, src.locator
    out: list[Finding] = []

    def at(*path: str | int) -> tuple[int, int]:
        return loc.pos(("rule", i, *path))

    def item(value: str, *path: str | int) -> tuple[int, int]:
        return places.entry(("rule", i, *path), value)

    for n in rule.actions:
        if n != "*" and n not in ACTIONS and n not in PERMISSIONS:
            out.append(finding("STK010", name, item(n, "actions"),
                               f"rule {rule.id}: unknown action "
                               f"or permission {n!r}{run.hint(n, KNOWN_NAMES)}"))
    actions = expand_actions(rule.actions)
    if "*" in rule.actions and rule.effect == "permit":
        # A forbid of every action only narrows (an operator stopping an app): refusing the set
        # for it kept the host deciding with the previous revision, the app still allowed.
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
        if rule.effect == "forbid" and k in FORBID_LISTS and (
                (why := _forbid_list_empty(k, getattr(w, k))) is not None) and (
                spared := sorted(CONCERNS[k] & actions)):
            out.append(finding("STK037", name, at("when", k), f"rule {rule.id}: {k} {why}, "
                               f"so it matches no request and this forbid forbids no "
                               f"{', '.join(spared)} at all; leave {k} out to forbid every "
                               "one, or list what to forbid"))
    if rule.effect == "permit":
        out.extend(_partial_concern(src, i, rule, actions, item, at))
        for a in sorted(actions):
            need = REQUIRED_LIST.get(a)
            if need and getattr(w, need) is None:
                out.append(finding("STK028", name, at("actions"), f"rule {rule.id}: {a} is "
                                   f"never allowed without `{need}` in [rule.when]"))
            elif need and getattr(w, need) == []:
                out.append(finding("STK028", name, at("when", need), f"rule {rule.id}: "
                                   f"`{need} = []` lists nothing, so no {a} that names one "
                                   "is ever allowed"))
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
            elif (k == "roles" and norm in IMPERSONATING_ROLES and rule.effect == "permit"
                  and w.any_user and "roles.assign" in actions):
                # The servers decide it behind the gate (`host.server.impersonation`): a
                # reviewer reading this permit as "any user may be made a bot" misreads it.
                out.append(finding("STK040", name, item(entry, "when", k), f"rule {rule.id}: "
                                   f"any_user = true does not reach people with {norm!r}: it "
                                   "lets its holder post under another name, which both servers "
                                   "refuse to give a person the app did not create"))
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
        problem = run.pattern_error(w.username_pattern, fold=rule.effect == "forbid")
        if problem is not None:
            out.append(finding("STK022", name, at("when", "username_pattern"),
                               f"rule {rule.id}: {problem}"))
        elif (odd := _unplain(w.username_pattern, 0x20)) is not None:
            out.append(finding("STK022", name, at("when", "username_pattern"),
                               f"rule {rule.id}: username_pattern holds {odd}, which no username "
                               "holds (usernames are ASCII letters, digits, '.', '_', '-'): a "
                               "look-alike or invisible character; write it as an escape",
                               severity=_unmatchable(rule)))
    for key in w.custom_field_keys or []:
        if FIELD_KEY_RE.fullmatch(key) is None:
            why = _unplain(key, 0x21) or "a character no key holds"
            out.append(finding("STK025", name, item(key, "when", "custom_field_keys"),
                               f"rule {rule.id}: custom field key {key!r} holds {why}: keys are "
                               "a letter, then letters, digits or '_', so it names no field",
                               severity=_unmatchable(rule)))
    return out


def _unplain(text: str, low: int) -> str | None:
    """The first character of `text` outside printable ASCII (from `low`), named by its code
    point (a look-alike reads as the letter it imitates), or None."""
    odd = next((c for c in text if not low <= ord(c) <= 0x7E), None)
    return None if odd is None else f"U+{ord(odd):04X} ({odd!r})"


def _unmatchable(rule: Rule) -> Severity:
    """An entry that can match no request: in a forbid it reads as forbidding what it forbids
    not (an error); in a permit it only allows nothing (a warning). Guards: a look-alike or
    invisible character making a reviewed forbid a no-op (DESIGN rule 12)."""
    return "error" if rule.effect == "forbid" else "warning"


def _forbid_list_empty(key: str, values: list[str]) -> str | None:
    """Why a forbid's list is empty once compiled (`policies.policy`), or None. Admin-class
    roles and the user type `app` are dropped there: no request can name them (guardrails)."""
    if values == []:
        return "= []"
    norms = [normalize_role(v) for v in values] if key in ("roles", "user_types") else None
    if key == "roles" and norms is not None and all(n is not None and is_admin_class(n)
                                                    for n in norms):
        return "lists only admin-class roles, which no request may name (the engine drops them)"
    if key == "user_types" and norms == ["app"] * len(values):
        return "lists only the type 'app', which no app may create (the engine drops it)"
    return None


# Keys that narrow what a permit allows (any_user and allow_private only ever widen it).
RESTRICTING = tuple(k for k in CONCERNS if k not in ("any_user", "allow_private"))


def _partial_concern(src: SourceFile, i: int, rule: Rule, actions: frozenset[str],
                     item: Callable[..., Pos], at: Callable[..., Pos]) -> list[Finding]:
    """STK038, per action of a permit: the constraints written for its other actions that do
    not restrict this one. The engine reads a key only for the actions it concerns, so
    `actions = ["users.create", "users.deactivate"]` with `username_pattern` allows
    deactivating any (own, or with any_user any) user, whatever the pattern says."""
    w = rule.when
    keys = [k for k in RESTRICTING if getattr(w, k) is not None and CONCERNS[k] & actions]
    out: list[Finding] = []
    for a in sorted(actions):
        free = [k for k in keys if a not in CONCERNS[k]]
        if free:
            where = item(a, "actions") if a in rule.actions else at("actions")
            verb = "does" if len(free) == 1 else "do"
            out.append(finding("STK038", src.name, where, f"rule {rule.id}: {', '.join(free)} "
                               f"{verb} not restrict {a}: this rule allows {a} whatever "
                               f"{'it says' if len(free) == 1 else 'they say'}; give {a} a "
                               "rule of its own to make that plain"))
    return out


def _file_findings(src: SourceFile, pf: PolicyFile, run: _Run) -> list[Finding]:
    out: list[Finding] = []
    places = EntryPlaces(src)
    for i, rule in enumerate(pf.rule):
        out.extend(_rule_findings(src, i, rule, places, run))
    for i, q in enumerate(pf.quota):
        if q.action != "*" and q.action not in ACTIONS:
            out.append(finding("STK010", src.name, src.locator.pos(("quota", i, "action")),
                               f"quota {q.id}: unknown action {q.action!r}"
                               f"{run.hint(q.action, KNOWN_ACTIONS)} (use an action name "
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
        if c <= 0:
            out.append(finding("STK018", src.name, line, f"max_active_app_users = {c} admits "
                               "no app user; forbid users.create instead"))
        elif c > MAX_SEATS:
            out.append(finding("STK019", src.name, line, f"max_active_app_users {c} is over "
                               f"{MAX_SEATS:,}, more than the host's seat check accepts"))
        elif c > ABSURD_SEATS:
            out.append(finding("STK019", src.name, line, f"max_active_app_users {c} is no cap",
                               severity="warning"))
    return out


# Steps `_QuotaCover` may take, per app entry of the set's rules and quotas (plus a floor).
# Guards: whether one quota names every app of a permit is a search no index makes linear in
# the worst case, and the host lints every reload (DESIGN rule 13). Ordinary files take a few
# steps per permit; past the budget a permit counts as having no quota (STK013/STK033 report
# it, and say the search was cut short): a hostile file is refused, never waved through.
QUOTA_SEARCH_STEPS_PER_ENTRY = 16
QUOTA_SEARCH_FLOOR = 100_000


class _QuotaCover:
    """Is there one quota (limit > 0) on an action, or on every action, whose apps include
    every app a permit names (or that applies to every app)? Quotas are indexed by the apps
    they name; a permit is checked against the quotas naming its rarest app, each by one set
    inclusion, and the answer for one list of apps is kept."""

    def __init__(self, quotas: Sequence[Quota], entries: int) -> None:
        self._left = QUOTA_SEARCH_FLOOR + QUOTA_SEARCH_STEPS_PER_ENTRY * entries
        self._wild: set[str] = set()  # actions (or "*") with a quota on every app
        self._apps: list[frozenset[str]] = []
        self._naming: dict[tuple[str, str], list[int]] = {}  # (action, app) -> quotas
        for q in quotas:
            if q.limit <= 0:
                continue
            if "*" in q.apps:
                self._wild.add(q.action)
                continue
            self._apps.append(frozenset(q.apps))
            for a in self._apps[-1]:
                self._naming.setdefault((q.action, a), []).append(len(self._apps) - 1)
        self._known: dict[tuple[frozenset[str], str], str] = {}

    def missing(self, apps: Sequence[str], action: str) -> str | None:
        """None when a quota covers the permit's apps; else "" (none does) or, when the search
        was cut short, a note saying so for the finding."""
        if action in self._wild or "*" in self._wild:
            return None
        if "*" in apps:
            return ""  # only a quota on every app covers every app
        key = (frozenset(apps), action)
        got = self._known.get(key)
        if got is None:
            got = self._search(key[0], action)
            if got != "found":
                other = self._search(key[0], "*")
                got = other if other == "found" or got == "none" else got
            self._known[key] = got
        return None if got == "found" else (
            " (the search for one was cut short: too many quotas and apps to compare)"
            if got == "cut" else "")

    def _search(self, apps: frozenset[str], action: str) -> str:
        """"found", "none", or "cut" when the budget ran out first."""
        rarest = min((self._naming.get((action, a), []) for a in apps), key=len)
        for k in rarest:
            self._left -= len(apps)
            if self._left < 0:
                return "cut"
            if apps <= self._apps[k]:
                return "found"
        return "none"


def _permitted(rules: Sequence[tuple[SourceFile, int, Rule]]) -> dict[str, set[str]]:
    """Action -> every app some permit lets do it ("*" among them when a permit names every
    app): what STK016, STK024 and STK036 ask, each in one lookup."""
    out: dict[str, set[str]] = {}
    for _, _, r in rules:
        if r.effect == "permit":
            for a in expand_actions(r.actions):
                out.setdefault(a, set()).update(r.apps)
    return out


def _meets(apps: set[str], permitted: set[str] | None) -> bool:
    """Does a permit of the action apply to one of `apps` (or do either name every app)?"""
    if not permitted:
        return False
    return "*" in apps or "*" in permitted or not permitted.isdisjoint(apps)


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
    permitted = _permitted(rules)
    entries = sum(len(r.apps) for _, _, r in rules) + sum(len(q.apps) for _, _, q in quotas)
    cover = _QuotaCover([q for _, _, q in quotas], entries)
    for s, i, r in rules:
        if r.effect != "permit":
            continue
        acts = expand_actions(r.actions)
        if "users.create" in acts and (note := cover.missing(r.apps, "users.create")) is not None:
            out.append(finding("STK013", s.name, s.locator.pos(("rule", i, "actions")),
                               f"rule {r.id}: permits users.create (billed seats) with no quota "
                               f"covering every app it names{note}"))
        for a in sorted(acts & PRIVILEGE_ACTIONS):
            if (note := cover.missing(r.apps, a)) is not None:
                out.append(finding("STK033", s.name, s.locator.pos(("rule", i, "actions")),
                                   f"rule {r.id}: permits {a} with no quota{note}"))
    out.extend(_role_power_findings(rules, permitted))
    for s, i, r in rules:
        if r.effect != "forbid":
            continue
        apps = set(r.apps)
        if not any(_meets(apps, permitted.get(a)) for a in expand_actions(r.actions)):
            out.append(finding("STK024", s.name, s.locator.pos(("rule", i)),
                               f"forbid {r.id} matches no permit (it changes nothing today)",
                               severity="suggestion"))
    for s, i, q in quotas:
        if q.action != "*" and not _meets(set(q.apps), permitted.get(q.action)):
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
                         permitted: Mapping[str, set[str]]) -> list[Finding]:
    """STK036: a permit lists a role that is a power of its own (`ROLE_AMOUNTS_TO`) for an app
    no permit lets do what that role amounts to: the engine refuses the role every time."""
    out: list[Finding] = []
    for s, i, r in rules:
        if r.effect != "permit" or not r.when.roles:
            continue
        acts = expand_actions(r.actions)
        # As the rule compiles it (NFKC + casefold): `LiveChat-Agent` is livechat-agent. A
        # role listed twice, in any spelling, is one finding.
        norms = dict.fromkeys(n for n in map(normalize_role, r.when.roles) if n is not None)
        for role in norms:
            powers = ROLE_AMOUNTS_TO.get(role)
            if powers is None:
                continue
            needed = ({powers[0]} if acts & {"roles.assign", "users.create"} else set()) | (
                {powers[1]} if "roles.remove" in acts else set())
            for action in sorted(needed):
                allowed = permitted.get(action, set())
                if "*" in allowed:
                    continue
                missing = [a for a in r.apps if a not in allowed]
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
    run = _Run()
    for s in sources:
        if s.model is not None:
            out.extend(_file_findings(s, s.model, run))
    out.extend(_set_findings(sources))
    out.extend(record_fit_findings(sources))  # STK039
    return out
