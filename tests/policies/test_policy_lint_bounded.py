"""Lint runs in time near-linear in the file (DESIGN rule 13): the host lints every policy reload
in its upkeep thread, so a hostile file under the 256 KiB cap must not stall it. Each builder
below is a shape that once took seconds to hours (a role repeated 150 times: 154 s for 126 KB);
and on ordinary files the findings are the ones the plain, quadratic checks give."""
from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polhelp import DEFAULT, DEMO

from policies.findings import Finding
from policies.lint import lint_set
from policies.loader import MAX_FILE_BYTES, load, parse_text
from policies.policy import expand_actions
from policies.source import SourceFile
from policies.vocabulary import ROLE_AMOUNTS_TO

HEAD = 'schema = 1\nname = "x"\n'
# Generous: each file below lints in well under a second; the quadratic checks took 8 s to
# hours on the same files.
BOUND_S = 5.0


def quota(i: int, apps: str = '"*"', action: str = "*") -> str:
    return f'[[quota]]\nid="q{i}"\napps=[{apps}]\naction="{action}"\nlimit=5\nwindow="1h"\n'


def rule(id_: str, apps: Sequence[str], actions: str, when: str = "",
         effect: str = "permit") -> str:
    listed = ",".join(f'"{a}"' for a in apps)
    out = f'[[rule]]\nid="{id_}"\neffect="{effect}"\napps=[{listed}]\nactions=[{actions}]\n'
    return out + (f"[rule.when]\n{when}\n" if when else "")


def fill(head: str, unit: Callable[[int], str]) -> str:
    """`head` and as many units as fit under the file cap."""
    parts, size, i = [head], len(head), 0
    while True:
        u = unit(i)
        if size + len(u) > MAX_FILE_BYTES - 64:
            return "".join(parts)
        parts.append(u)
        size += len(u)
        i += 1


def role_repeated() -> str:  # the reviewer's file: STK036 over each repeat x app x permit
    apps = [f"a{i}" for i in range(7000)]
    roles = ",".join(['"livechat-agent"'] * 3000)
    return (HEAD + quota(0) + rule("r1", apps, '"roles.assign"', f"roles=[{roles}]")
            + rule("r2", [f"b{i}" for i in range(7000)], '"livechat.add_agent"'))


def role_rules_and_permits() -> str:
    def unit(i: int) -> str:
        return (rule(f"r{i}", [f"a{j}" for j in range(20)], '"roles.assign"',
                     'roles=["livechat-agent"]')
                + rule(f"p{i}", [f"b{j}" for j in range(20)], '"livechat.add_agent"'))
    return fill(HEAD + quota(0), unit)


def quota_search() -> str:  # STK013/STK033: every permit against every quota, app by app
    apps = [f"a{j}" for j in range(60)]
    head = HEAD + "".join(quota(i, ",".join(f'"{a}"' for a in apps if a != f"a{i % 60}"),
                                "users.create") for i in range(250))
    return fill(head, lambda i: rule(f"r{i}", apps, '"users.create","roles.assign",'
                                     '"users.deactivate"', 'user_types=["bot"]\nroles=["bot"]'))


def forbids_and_permits() -> str:  # STK024: every forbid against every permit
    return fill(HEAD + quota(0), lambda i: (
        rule(f"f{i}", [f"f{i}x{j}" for j in range(12)], '"users.get"', effect="forbid")
        + rule(f"p{i}", [f"p{i}x{j}" for j in range(12)], '"users.get"')))


def quotas_and_permits() -> str:  # STK016: every quota against every permit
    return fill(HEAD, lambda i: (
        quota(i, ",".join(f'"q{i}x{j}"' for j in range(10)), "users.get")
        + rule(f"p{i}", [f"p{i}x{j}" for j in range(10)], '"users.get"')))


def one_line(key: str, action: str, entry: Callable[[int], str], extra: str = "") -> str:
    head = HEAD + quota(0) + rule("r", ["a"], f'"{action}"') + "[rule.when]\n" + extra + key + "=["
    body, size, i = [], len(head), 0
    while size < MAX_FILE_BYTES - 200:
        e = f'"{entry(i)}",'
        body.append(e)
        size += len(e)
        i += 1
    return head + "".join(body) + "]\n"


SHAPES: dict[str, Callable[[], str]] = {
    "role repeated": role_repeated,
    "roles x permits": role_rules_and_permits,
    "quota search": quota_search,
    "forbids x permits": forbids_and_permits,
    "quotas x permits": quotas_and_permits,
    "bad roles on one line": lambda: one_line("roles", "roles.assign", lambda i: f"x!{i}"),
    "bad user types on one line": lambda: one_line("user_types", "users.create",
                                                   lambda i: f"T!{i}"),
    "every-port domains on one line": lambda: one_line("domains", "http.request",
                                                       lambda i: f"h{i}.example.com:*"),
    "private addresses on one line": lambda: one_line(
        "allow_private", "http.request", lambda i: f"10.{i // 62500}.{i // 250 % 250}.{i % 250}",
        'domains=["a.example"]\n'),
    "unknown actions": lambda: HEAD + quota(0) + rule(
        "r", ["a"], ",".join(f'"users.crea{i}"' for i in range(15000))),
    "unknown quota actions": lambda: fill(HEAD, lambda i: quota(i, '"a"', f"users.crea{i}")),
    "quotas on every app": lambda: fill(
        HEAD, lambda i: quota(i, ",".join(f'"a{j}"' for j in range(300)), "users.get")),
}


class TooSlow(Exception):
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (rather than hang the suite for hours) when the body runs past `seconds`."""
    def stop(*_: object) -> None:
        raise TooSlow(f"still linting after {seconds} s")
    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_hostile_file_at_the_cap_lints_in_seconds(shape: str) -> None:
    text = SHAPES[shape]()
    assert MAX_FILE_BYTES * 0.4 < len(text.encode()) <= MAX_FILE_BYTES, len(text)
    src, pre = parse_text(text, "x.toml")
    assert src.model is not None, pre
    start = time.perf_counter()
    with deadline(4 * BOUND_S):
        findings = lint_set([src])
    took = time.perf_counter() - start
    assert took < BOUND_S, f"{shape}: {took:.1f} s"
    assert findings or shape == "role repeated"


# ---- the same findings as the plain checks on ordinary files --------------------------------

def _plain_set_findings(src: SourceFile) -> set[tuple[str, int, int, str]]:
    """STK013/016/024/033/036 as first written: every rule against every rule and quota."""
    assert src.model is not None
    rules = list(enumerate(src.model.rule))
    quotas = list(enumerate(src.model.quota))
    permits = [(r.apps, expand_actions(r.actions)) for _, r in rules if r.effect == "permit"]
    out: set[tuple[str, int, int, str]] = set()

    def add(code: str, path: tuple[str | int, ...], message: str) -> None:
        out.add((code, *src.locator.pos(path), message))

    def quota_for(app_list: Sequence[str], action: str) -> bool:
        for _, q in quotas:
            if q.action not in (action, "*") or q.limit <= 0:
                continue
            if "*" in q.apps or all(a in q.apps for a in app_list if a != "*"):
                if "*" in app_list and "*" not in q.apps:
                    continue
                return True
        return False

    for i, r in rules:
        if r.effect != "permit":
            continue
        acts = expand_actions(r.actions)
        if "users.create" in acts and not quota_for(r.apps, "users.create"):
            add("STK013", ("rule", i, "actions"), f"rule {r.id}: permits users.create (billed "
                "seats) with no quota covering every app it names")
        for a in sorted(acts & {"roles.assign", "users.deactivate"}):
            if not quota_for(r.apps, a):
                add("STK033", ("rule", i, "actions"), f"rule {r.id}: permits {a} with no quota")
        for role in r.when.roles or []:
            powers = ROLE_AMOUNTS_TO.get(role)
            if powers is None:
                continue
            needed = ({powers[0]} if acts & {"roles.assign", "users.create"} else set()) | (
                {powers[1]} if "roles.remove" in acts else set())
            for action in sorted(needed):
                missing = [a for a in r.apps if not any(
                    action in pacts and ("*" in papps or a in papps) for papps, pacts in permits)]
                if missing:
                    add("STK036", ("rule", i, "when", "roles"),
                        f"rule {r.id}: the role {role!r} is being a livechat agent, so giving or "
                        f"taking it is {action} too, which no permit allows for "
                        f"{', '.join(missing)}: the role is refused every time")
    for i, r in rules:
        if r.effect != "forbid":
            continue
        acts = expand_actions(r.actions)
        if not any(acts & pacts and ("*" in r.apps or "*" in papps or set(r.apps) & set(papps))
                   for papps, pacts in permits):
            add("STK024", ("rule", i), f"forbid {r.id} matches no permit (it changes nothing "
                "today)")
    for i, q in quotas:
        if q.action != "*" and not any(
                q.action in pacts and ("*" in q.apps or "*" in papps or set(q.apps) & set(papps))
                for papps, pacts in permits):
            add("STK016", ("quota", i, "action"),
                f"quota {q.id}: no rule permits {q.action} for these apps")
    return out


SET_CODES = {"STK013", "STK016", "STK024", "STK033", "STK036"}


def _as_set(findings: list[Finding], codes: set[str]) -> set[tuple[str, int, int, str]]:
    return {(f.code, f.line, f.column, f.message) for f in findings if f.code in codes}


APPS = ("a", "b", "c", "*")
ACTIONS = ("users.create", "roles.assign", "roles.remove", "roles", "livechat.add_agent",
           "livechat.agents", "users.deactivate", "users.get", "users.read", "http.request", "*")


@st.composite
def ordinary_file(draw: st.DrawFn) -> str:
    out = [HEAD]
    for i in range(draw(st.integers(0, 6))):
        apps = draw(st.lists(st.sampled_from(APPS), min_size=1, max_size=3))
        acts = draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3))
        when = ""
        if draw(st.booleans()):
            roles = draw(st.lists(st.sampled_from(("bot", "livechat-agent", "x")), max_size=3))
            when = f"roles = {roles!r}".replace("'", '"')
        effect = draw(st.sampled_from(("permit", "permit", "forbid")))
        out.append(rule(f"r{i}", apps, ",".join(f'"{a}"' for a in acts), when, effect))
    for i in range(draw(st.integers(0, 4))):
        apps = ",".join(f'"{a}"' for a in draw(st.lists(st.sampled_from(APPS), min_size=1,
                                                          max_size=3)))
        action = draw(st.sampled_from(("*", "users.create", "roles.assign", "users.deactivate",
                                       "users.get", "livechat.add_agent")))
        out.append(quota(i, apps, action).replace("limit=5", f"limit={draw(st.sampled_from((0, 5)))}"))
    return "".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ordinary_file())
def test_set_findings_are_those_of_the_plain_checks(text: str) -> None:
    src, pre = parse_text(text, "f.toml")
    assert src.model is not None, pre
    assert _as_set(lint_set([src]), SET_CODES) == _plain_set_findings(src)


def test_shipped_files_keep_their_findings() -> None:
    res = load([DEFAULT, DEMO])
    for s in res.sources:
        assert _as_set(lint_set([s]), SET_CODES) == _plain_set_findings(s)


# ---- list entries are located as the locator locates them, without a scan per entry --------

ENTRY = st.sampled_from(("bot", "Bot", "x!", "a", "b'c", 'd"e', ", ", "admin", "bo", "ot"))


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, min_size=1, max_size=8), st.sampled_from((", ", ",\n  ", ",")),
       st.booleans(), st.booleans())
def test_entry_positions_match_the_locator(values: list[str], sep: str, literal: bool,
                                           trailing: bool) -> None:
    def q(v: str) -> str:
        if "'" not in v and (literal or '"' in v):
            return f"'{v}'"
        return '"' + v.replace('"', '\\"') + '"'
    arr = sep.join(q(v) for v in values) + ("," if trailing else "")
    text = (HEAD + quota(0) + rule("r", ["a"], '"roles.assign"')
            + f"[rule.when]\nroles = [{arr}]\nany_user = false\n")
    src, pre = parse_text(text, "f.toml")
    assert src.model is not None, pre
    from policies.lint import EntryPlaces
    places = EntryPlaces(src)
    path = ("rule", 0, "when", "roles")
    for v in values:
        assert places.entry(path, v) == src.locator.entry(path, v), (v, text)



@pytest.mark.parametrize("shape", ["roles x permits", "forbids x permits", "quotas x permits",
                                   "quota search"])
def test_a_folder_of_hostile_files_lints_in_seconds(shape: str) -> None:
    """The set-wide checks (STK013/016/024/033/036) run over every file of the folder at once:
    eight files at the cap once took each rule against every rule of all eight."""
    text = SHAPES[shape]()
    sources = []
    for n in range(8):
        src, pre = parse_text(text, f"f{n}.toml")
        assert src.model is not None, pre
        sources.append(src)
    start = time.perf_counter()
    with deadline(8 * BOUND_S):
        lint_set(sources)
    assert time.perf_counter() - start < 2 * BOUND_S


def test_a_quota_search_past_its_budget_reports_the_permit() -> None:
    """No quota names all ten apps of any permit, yet every quota names nine of them: each
    permit would be checked against hundreds of quotas. Past the search's budget the permit is
    reported (the file refused), and the finding says the search was cut short."""
    import itertools

    popular = [f"p{j}" for j in range(20)]
    combos = itertools.combinations(popular, 10)
    head = HEAD + "".join(quota(i, ",".join(f'"{a}"' for a in popular[i % 11:i % 11 + 9]),
                                "users.create") for i in range(900))
    text = fill(head, lambda i: rule(f"r{i}", next(combos), '"users.create"',
                                     'user_types=["bot"]'))
    src, _ = parse_text(text, "x.toml")
    start = time.perf_counter()
    found = [f for f in lint_set([src]) if f.code == "STK013"]
    assert time.perf_counter() - start < BOUND_S
    assert found and all(f.severity == "security-warning" for f in found)
    assert any("cut short" in f.message for f in found)
