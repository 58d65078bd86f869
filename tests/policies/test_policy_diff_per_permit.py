"""`policy diff` compares permit by permit: a NEW permit is covered only by one OLD permit that
is at least as strict on every constraint together, so moving a setting from one permit to
another is a widening; an absent list and an empty one are told apart where the engine does.

The property test holds the diff to the engine: whenever NEW allows a request OLD refused, the
diff reports a widening (and the reverse for narrowings)."""
from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polhelp import ALL_PERMS, unlinted
from typer.testing import CliRunner

from host.cli import output
from host.cli.main import root
from policies import Policy, Request, decide
from policies.diff import compare

HEAD = 'schema = 1\nname = "t"\n'
QUOTA = '[[quota]]\nid="q-assign"\napps=["a1"]\naction="roles.assign"\nlimit=5\nwindow="1h"\n'


def permit(id_: str, action: str, when: str = "", apps: str = '"a1"') -> str:
    body = f'[[rule]]\nid="{id_}"\neffect="permit"\napps=[{apps}]\nactions=["{action}"]\n'
    return body + (f"[rule.when]\n{when}\n" if when else "")


def widens(old: str, new: str) -> list[str]:
    return [str(c) for c in compare(unlinted(old), unlinted(new)) if c.direction == "widens"]


def narrows(old: str, new: str) -> list[str]:
    return [str(c) for c in compare(unlinted(old), unlinted(new)) if c.direction == "narrows"]


# The reviewer's three cases: each one a request NEW allows and OLD refused.
ANY_USER_OLD = (permit("own-support", "roles.assign", 'roles = ["support"]')
                + permit("any-bot", "roles.assign", 'roles = ["bot"]\nany_user = true'))
ANY_USER_NEW = ANY_USER_OLD.replace('roles = ["bot"]', 'roles = ["bot", "support"]')
PRIVATE_OLD = (permit("crm", "http.request",
                      'domains = ["crm.internal.example"]\nallow_private = ["10.0.0.5"]')
               + permit("public", "http.request", 'domains = ["partner.example"]'))
PRIVATE_NEW = PRIVATE_OLD.replace('domains = ["crm.internal.example"]',
                                  'domains = ["crm.internal.example", "partner.example"]')
REST_OLD = permit("rest", "rest.call", 'rest_routes = ["POST /api/v1/rooms.delete"]')
REST_NEW = REST_OLD + "rest_fields = []\n"


def test_any_user_moved_to_another_role_is_a_widening() -> None:
    got = widens(ANY_USER_OLD, ANY_USER_NEW)
    assert got, "any_user now reaches the support role on any user: a widening"
    assert any("roles adds ['support']" in c and "any_user" in c for c in got), got
    # ...which the engine agrees with.
    req = {"user_id": "human-staff", "role": "support"}
    facts = {"role_privileged": False, "target_is_own_app_user": False}
    assert not ask(unlinted(ANY_USER_OLD), "roles.assign", req, facts).allowed
    assert ask(unlinted(ANY_USER_NEW), "roles.assign", req, facts).allowed


def test_allow_private_paired_with_another_permits_domain_is_a_widening() -> None:
    got = widens(PRIVATE_OLD, PRIVATE_NEW)
    assert any("domains adds ['partner.example']" in c and "allow_private" in c
               for c in got), got


def test_rest_fields_absent_then_empty_is_a_widening_and_back_a_narrowing() -> None:
    got = widens(REST_OLD, REST_NEW)
    assert any("rest_fields" in c for c in got), got
    assert widens(REST_NEW, REST_OLD) == []
    assert any("rest_fields" in c for c in narrows(REST_NEW, REST_OLD))
    # a listed field dropped is a narrowing, not a widening
    listed = REST_OLD + 'rest_fields = ["name"]\n'
    assert widens(listed, REST_NEW) == []
    assert widens(REST_NEW, listed) != []


def test_merging_or_splitting_permits_is_no_widening() -> None:
    split = (permit("r1", "roles.assign", 'roles = ["bot"]\nany_user = true')
             + permit("r2", "roles.assign", 'roles = ["support"]\nany_user = true'))
    merged = permit("r", "roles.assign", 'roles = ["bot", "support"]\nany_user = true')
    assert widens(split, merged) == [] and widens(merged, split) == []
    web_split = (permit("a", "http.request", 'domains = ["a.example"]')
                 + permit("b", "http.request", 'domains = ["b.example:8443"]'))
    web_merged = permit("ab", "http.request", 'domains = ["b.example:8443", "a.example"]')
    assert widens(web_split, web_merged) == [] and widens(web_merged, web_split) == []
    # a stricter permit added beside a wider one grants nothing
    wider = permit("w", "users.create", 'user_types = ["bot"]\nroles = ["bot", "x"]')
    stricter = permit("s", "users.create", 'user_types = ["bot"]\nroles = ["x"]\n'
                      'username_pattern = "^ext-.*$"')
    assert widens(wider, wider + stricter) == []
    assert widens(wider, wider) == [] and narrows(wider, wider) == []


def test_a_permit_that_allows_nothing_covers_nothing() -> None:
    never = permit("n", "users.create", 'roles = ["bot"]')  # no user_types: never allows
    some = permit("n", "users.create", 'user_types = ["bot"]')
    assert widens(never, some) and not widens(some, never)
    assert narrows(some, never)


@pytest.mark.parametrize(("old", "new"), [(ANY_USER_OLD, ANY_USER_NEW), (PRIVATE_OLD, PRIVATE_NEW),
                                          (REST_OLD, REST_NEW)])
def test_cli_says_so_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 old: str, new: str) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(output.err_console, "_file", buf)
    (tmp_path / "old.toml").write_text(HEAD + old + QUOTA)
    (tmp_path / "new.toml").write_text(HEAD + new + QUOTA)
    r = CliRunner().invoke(root, ["--home", str(tmp_path / "home"), "policy", "diff",
                                  str(tmp_path / "old.toml"), str(tmp_path / "new.toml")])
    err = buf.getvalue() + r.stderr
    assert r.exit_code == 1, err
    assert "NEW grants more" in err and "+ widens" in err, err


# ---- the diff against the engine, on small random policies ----------------------------------

def ask(p: Policy, action: str, args: dict[str, Any], facts: dict[str, Any],
        app: str = "a1") -> Any:
    return decide(p, ALL_PERMS, Request(app, "i1", action, args, facts, 1_700_000_000.0))


OWN = ({"target_is_own_app_user": True}, {"target_is_own_app_user": False})
PUBLIC, PRIVATE, PRIVATE2 = "93.184.216.34", "10.0.0.5", "10.0.0.6"


def _requests() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for t, roles, keys, name in itertools.product(
            ("bot", "user"), ([], ["bot"], ["support"], ["bot", "support"]),
            ([], ["k1"], ["k2"], ["k1", "k2"]), ("ext-a", "other")):
        out.append(("users.create", {"username": name, "name": "N", "type": t, "roles": roles,
                                     "custom_fields": dict.fromkeys(keys, "v")},
                    {"role_privileged": False}))
    for role, own in itertools.product(("bot", "support"), OWN):
        out.append(("roles.assign", {"user_id": "u", "role": role},
                    {"role_privileged": False, **own}))
    for keys, own in itertools.product(([], ["k1"], ["k1", "k2"]), OWN):
        out.append(("users.set_custom_fields",
                    {"user_id": "u", "fields": dict.fromkeys(keys, "v")}, dict(own)))
    for host, port, ips in itertools.product(
            ("a.example", "b.example", "x.sub.example"), (443, 8443),
            ([PUBLIC], [PRIVATE], [PRIVATE2], [PRIVATE, PRIVATE2])):
        out.append(("http.request", {"method": "GET", "url": f"https://{host}:{port}/"},
                    {"resolved_ips": ips}))
    for route, mapped, body in itertools.product(
            ("/api/v1/a", "/api/v1/b"), (True, False), ({}, {"f1": 1}, {"f1": 1, "f2": 2})):
        out.append(("rest.call", {"method": "GET", "route": route, "body": body},
                    {"rest_mapped": mapped}))
    return out


REQUESTS = _requests()
LISTS: dict[str, tuple[str, ...]] = {
    "user_types": ("bot", "user"),
    "roles": ("bot", "support"),
    "custom_field_keys": ("k1", "k2"),
    "domains": ("a.example", "b.example", "*.sub.example", "a.example:8443", "a.example:*",
                "*.sub.example:*"),
    "allow_private": (PRIVATE, PRIVATE2, "a.example"),
    "rest_routes": ("GET /api/v1/a", "GET /api/v1/b"),
    "rest_fields": ("f1", "f2"),
}
ACTIONS = ("users.create", "roles.assign", "users.set_custom_fields", "http.request",
           "rest.call")


@st.composite
def policy_text(draw: st.DrawFn) -> str:
    out = []
    for i in range(draw(st.integers(0, 3))):
        lines = []
        for key, universe in LISTS.items():
            if draw(st.booleans()):
                vals = draw(st.lists(st.sampled_from(universe), unique=True, max_size=3))
                lines.append(f"{key} = {vals!r}".replace("'", '"'))
        if draw(st.booleans()):
            lines.append("any_user = true")
        pat = draw(st.sampled_from((None, "^ext-.*$", "^.*$")))
        if pat:
            lines.append(f'username_pattern = "{pat}"')
        apps = draw(st.sampled_from(('"a1"', '"*"', '"a1", "a2"')))
        out.append(permit(f"r{i}", draw(st.sampled_from(ACTIONS)), "\n".join(lines), apps))
    return "".join(out)


# The reviewer's three cases, in this universe, and a narrowing once missed.
@example(permit("r0", "roles.assign", 'roles = ["support"]')
         + permit("r1", "roles.assign", 'roles = ["bot"]\nany_user = true'),
         permit("r0", "roles.assign", 'roles = ["support"]')
         + permit("r1", "roles.assign", 'roles = ["bot", "support"]\nany_user = true'))
@example(permit("r0", "http.request", 'domains = ["a.example"]\nallow_private = ["10.0.0.5"]')
         + permit("r1", "http.request", 'domains = ["b.example"]'),
         permit("r0", "http.request",
                'domains = ["a.example", "b.example"]\nallow_private = ["10.0.0.5"]')
         + permit("r1", "http.request", 'domains = ["b.example"]'))
@example(permit("r0", "rest.call", 'rest_routes = ["GET /api/v1/a"]'),
         permit("r0", "rest.call", 'rest_routes = ["GET /api/v1/a"]\nrest_fields = []'))
@example(permit("r0", "http.request", 'domains = ["a.example"]'),
         permit("r0", "http.request", apps='"*"'))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_text(), policy_text())
def test_every_request_newly_allowed_is_reported(old_text: str, new_text: str) -> None:
    old, new = unlinted(old_text), unlinted(new_text)
    changes = compare(old, new)
    gained = lost = None
    for app in ("a1", "a2"):
        for action, args, facts in REQUESTS:
            was = ask(old, action, args, facts, app).allowed
            now = ask(new, action, args, facts, app).allowed
            if now and not was:
                gained = gained or (app, action, args, facts)
            if was and not now:
                lost = lost or (app, action, args, facts)
    if gained:
        assert any(c.direction == "widens" for c in changes), (gained, changes)
    if lost:
        assert any(c.direction == "narrows" for c in changes), (lost, changes)


# ---- bounded: a hostile NEW file cannot keep the reviewer's diff busy -----------------------

def _many(n: int, prefix: str, shift: int) -> str:
    return "".join(permit(f"{prefix}{i}", "users.create",
                          f'user_types = ["bot"]\nroles = ["x{i}", "y{(i + shift) % n}"]')
                   for i in range(n))


def test_thousands_of_permits_on_one_pair_diff_fast_and_never_say_nothing() -> None:
    import time

    old, new = unlinted(_many(1900, "r", 0)), unlinted(_many(1900, "n", 1))  # ~250 KB each
    start = time.perf_counter()
    changes = compare(old, new)
    assert time.perf_counter() - start < 10.0
    assert any(c.direction == "widens" for c in changes)
    # unchanged rules under the same ids are matched at once, not searched for
    start = time.perf_counter()
    assert compare(old, old) == []
    assert time.perf_counter() - start < 10.0


def test_past_the_bound_a_permit_is_reported_not_compared(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import policies.diff as diff_mod

    monkeypatch.setattr(diff_mod, "MAX_COMPARISONS", 3)
    old, new = unlinted(_many(5, "r", 0)), unlinted(_many(5, "n", 0))  # the same, renamed
    got = [c for c in compare(old, new) if c.direction == "widens"]
    assert got and all("not compared" in c.detail for c in got), got
