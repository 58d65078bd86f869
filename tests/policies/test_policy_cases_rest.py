"""`policy test` decides a `rest.call` case as the gate's REST bridge does (`policies.cases`):
a route that amounts to a bridge action is decided again as that action, by that action's rules.

Before, the case was decided by the `rest.call` permit alone and without the fact
`rest_mapped`, which the engine refuses to guess: every mapped route was "policy_denied", the
routes the gate allows too (`test_the_bridge_actions_constraints_decide_the_route` and
`test_routes_no_app_may_reach_and_untranslatable_bodies` fail before), and no case could tell a
reviewer what the bridge action's own rules decide.
"""
from __future__ import annotations

from pathlib import Path

from policies.cases import run_dir

POLICY = """
schema = 1
name = "crm"

[[rule]]
id = "crm-rest"
effect = "permit"
apps = ["crm"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["POST /api/v1/users.create", "GET /api/v1/users.list"]
rest_fields = []
"""
CREATE_PERMIT = """
[[rule]]
id = "crm-create"
effect = "permit"
apps = ["crm"]
actions = ["users.create"]
[rule.when]
user_types = ["user"]
username_pattern = "^ext-[a-z0-9-]{1,40}$"

[[quota]]
id = "crm-creates"
apps = ["crm"]
action = "users.create"
limit = 3
window = "10m"
"""


def _case(name: str, route: str, body: str, expect: str, rule: str | None = None) -> str:
    method, path = route.split(" ", 1)
    return (f'[[case]]\nname = "{name}"\napp = "crm"\naction = "rest.call"\n'
            f'args = {{ method = "{method}", route = "{path}", body = {body} }}\n'
            f'expect = "{expect}"\n' + (f'rule = "{rule}"\n' if rule else ""))


def _run(tmp_path: Path, policy: str, *cases: str) -> dict[str, tuple[bool, str]]:
    (tmp_path / "crm.toml").write_text(policy)
    (tmp_path / "crm.cases.toml").write_text("schema = 1\n" + "\n".join(cases))
    results, problems = run_dir(tmp_path)
    assert problems == [], problems
    return {r.name: (r.ok, r.got) for r in results}


def test_a_mapped_route_is_decided_as_its_bridge_action(tmp_path: Path) -> None:
    create = _case("create", "POST /api/v1/users.create",
                   '{ username = "ext-1", name = "One", type = "user" }', "policy_denied")
    fields = POLICY.replace("rest_fields = []", 'rest_fields = ["username", "name", "type"]')
    got = _run(tmp_path, fields, create)
    # No users.create permit: the gate refuses it, whatever `rest_fields` (for routes with no
    # bridge action) lists.
    assert got["create"][0], got


def test_the_bridge_actions_constraints_decide_the_route(tmp_path: Path) -> None:
    ok = _case("ok", "POST /api/v1/users.create",
               '{ username = "ext-1", name = "One", type = "user" }', "allow", "crm-create")
    bad_name = _case("bad-name", "POST /api/v1/users.create",
                     '{ username = "admin2", name = "Two", type = "user" }', "policy_denied")
    got = _run(tmp_path, POLICY + CREATE_PERMIT, ok, bad_name)
    assert got == {"ok": (True, got["ok"][1]), "bad-name": (True, got["bad-name"][1])}, got
    assert "crm-rest" in got["ok"][1] and "crm-create" in got["ok"][1], got


def test_routes_no_app_may_reach_and_untranslatable_bodies(tmp_path: Path) -> None:
    never = _case("never", "POST /api/v1/login", '{ user = "a", password = "b" }',
                  "permission_denied")
    extra = _case("extra", "POST /api/v1/users.create",
                  '{ username = "ext-1", name = "One", type = "user", department = "x" }',
                  "invalid_argument")
    unmapped = _case("unmapped", "GET /api/v1/users.list", "{}", "allow", "crm-rest")
    got = _run(tmp_path, POLICY + CREATE_PERMIT, never, extra, unmapped)
    assert all(ok for ok, _ in got.values()), got
