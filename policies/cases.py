"""Table-driven decision cases kept next to policy files (`*.cases.toml`).

```toml
schema = 1
policy = ["demo.toml"]          # optional, relative to this file; default: the *.toml beside it
[[case]]
name = "agent-sync creates a bot"
app = "agent-sync"
action = "users.create"
args = { username = "ext-1", name = "One", type = "bot" }
facts = {}
grants = ["users.create"]       # default: just the action's permission
now = 1700000000
expect = "allow"   # or permission_denied | policy_denied | guardrail | invalid_argument
rule = "agent-sync-create-users" # optional: this id must be among the deciding rules
```

A `rest.call` case is decided as the gate's REST bridge decides it (`policies.restmap`): the
routes no app may reach and an unmapped route naming a role are refused first; then `rest.call`
itself (fact `rest_mapped`); a route that amounts to a bridge action is decided again as that
action, with its arguments as the route's translation gives them (`app_user`: the app's own user
id, default "app-user"; a user named by username stands as that username) and the case's facts,
and its grants default to `server.rest` and that action's permission (a route with no bridge
action that reads what a permission guards, `policies.restmap.READS`: that permission, which
explicit grants must hold too). The manifest's declared
roles and the quotas are not the cases' (the gate checks both too: only ever stricter).
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policies.engine import decide
from policies.findings import FAILING, Finding, finding
from policies.lint import did_you_mean
from policies.loader import (
    CASES_SUFFIX,
    MAX_DEPTH,
    is_toml_name,
    key_too_deep,
    load,
    nesting_depth,
    read_file,
    toml_error,
    validation_findings,
)
from policies.locate import Locator
from policies.model import SchemaOne
from policies.policy import Policy
from policies.restmap import ByUsername, Refusal, plan_route, route_reads, translate_route
from policies.types import Decision, Request
from policies.vocabulary import ACTIONS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Case(_Strict):
    name: str
    app: str
    install: str = "inst-1"
    action: str
    args: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    grants: list[str] | None = None
    now: float | int = 0
    expect: Literal["allow", "permission_denied", "policy_denied", "guardrail",
                    "invalid_argument"]
    rule: str | None = None
    app_user: str = "app-user"


class CasesFile(_Strict):
    schema_version: SchemaOne = Field(alias="schema")
    policy: list[str] = []
    case: list[Case] = []


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    ok: bool
    expected: str
    got: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "name": self.name, "ok": self.ok, "expected": self.expected,
                "got": self.got, "message": self.message}


def run_case(policy: Policy, case: Case, file: str = "") -> CaseResult:
    """Decide one case and compare with its expectation."""
    if case.action == "rest.call":
        code, rules, message = _decide_rest(policy, case)
    else:
        grants = case.grants
        if grants is None:
            spec = ACTIONS.get(case.action)
            grants = [spec.permission] if spec else []
        d = _decide(policy, case, frozenset(grants), case.action, case.args, {})
        code, rules, message = d.code, d.rules, d.message
    ok = code == case.expect and (case.rule is None or case.rule in rules)
    return CaseResult(file, case.name, ok, case.expect + (f" by {case.rule}" if case.rule else ""),
                      code + (f" by {','.join(rules)}" if rules else ""), message)


def _decide(policy: Policy, case: Case, grants: frozenset[str], action: str,
            args: Mapping[str, Any], extra: Mapping[str, Any]) -> Decision:
    return decide(policy, grants, Request(case.app, case.install, action, dict(args),
                                          {**extra, **case.facts}, float(case.now)))


def _decide_rest(policy: Policy, case: Case) -> tuple[str, tuple[str, ...], str]:
    """A `rest.call` case by the REST bridge's steps (module docstring)."""
    plan = plan_route(case.args)
    if isinstance(plan, Refusal):
        return plan.code, (), plan.message
    translated = translate_route(plan, case.app_user) if plan.found is not None else None
    grants = case.grants
    reads = route_reads(case.args.get("method"), case.args.get("route"))
    if grants is None:
        grants = [ACTIONS["rest.call"].permission, *reads]
        if translated is not None and not isinstance(translated, Refusal):
            grants.append(ACTIONS[translated[0]].permission)
    missing = [p for p in reads if p not in grants]
    if missing:
        # The gate's grant step (`policies.grants`): the route reads what these guard.
        return "permission_denied", (), (f"{plan.label} reads what {missing[0]!r} guards: the "
                                         f"app needs {missing[0]!r} granted too")
    via = _decide(policy, case, frozenset(grants), "rest.call", case.args,
                  {"rest_mapped": plan.found is not None})
    if not via.allowed or translated is None:
        return via.code, via.rules, via.message
    if isinstance(translated, Refusal):
        return translated.code, via.rules, translated.message
    action, bridge_args = translated
    bridge_args = {k: v.username if isinstance(v, ByUsername) else v
                   for k, v in bridge_args.items()}
    inner = _decide(policy, case, frozenset(grants), action, bridge_args, {})
    if not inner.allowed:
        return inner.code, inner.rules, f"{plan.label} amounts to {action}: {inner.message}"
    return "allow", tuple(sorted({*via.rules, *inner.rules})), \
        f"{via.message}; as {action}: {inner.message}"


def _err(code: str, file: str, at: int | tuple[int, int], message: str) -> Finding:
    return finding(code, file, at, message, severity="error")


def parse_cases(text: str, name: str) -> tuple[CasesFile | None, list[Finding]]:
    """Validate one cases file's text. Every problem is a located one-line finding (file:line:
    column, code, what is wrong) — never a raw validation dump — so an author sees them all."""
    loc = Locator(text)
    if (deep := key_too_deep(text, name)) is not None:
        return None, [deep]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at, msg = toml_error(exc, text)
        return None, [_err("STK002", name, at, msg)]
    except RecursionError:
        return None, [_err("STK008", name, 0, "values nested too deeply to parse")]
    if nesting_depth(data) > MAX_DEPTH:
        return None, [_err("STK008", name, 0, f"values nested deeper than {MAX_DEPTH} levels")]
    try:
        model = CasesFile.model_validate(data)
    except ValidationError as exc:
        return None, [finding(f.code, f.file, (f.line, f.column), f"cases file: {f.message}",
                              severity="error") for f in validation_findings(name, exc, loc)]
    problems = [
        _err("STK010", name, loc.pos(("case", i, "action")), f"case {c.name!r}: unknown action "
             f"{c.action!r}{did_you_mean(c.action, list(ACTIONS))}")
        for i, c in enumerate(model.case) if c.action not in ACTIONS
    ]
    return (None, problems) if problems else (model, [])


def _read_cases(cf: Path) -> tuple[str | None, list[Finding]]:
    # As the loader reads a policy file: a FIFO named *.cases.toml hung `policy test`, and a
    # file of any size was read whole before its size was checked (a sparse 3 GiB one).
    text, errs = read_file(cf)
    return text, [finding(f.code, f.file, (f.line, f.column), f.message.replace(
        "policy files", "cases files"), severity="error") for f in errs]


def run_dir(directory: Path) -> tuple[list[CaseResult], list[Finding]]:
    """Run every *.cases.toml in `directory` against its policy files.

    When a cases file's policy set does not load, every finding that refused it is a problem
    (errors and security-warnings alike: the host refuses the set for either), and a run in
    which no case was decided is itself a problem: "0 passed, 0 failed" is never a pass."""
    results: list[CaseResult] = []
    problems: list[Finding] = []
    files = sorted(p for p in directory.iterdir() if is_toml_name(p.name)
                   and p.name.endswith(CASES_SUFFIX))
    if not files:
        problems.append(finding("STK032", str(directory), 0, "no *.cases.toml files here",
                                severity="error"))
    for cf in files:
        text, errs = _read_cases(cf)
        model, more = parse_cases(text, str(cf)) if text is not None else (None, [])
        problems.extend(errs + more)
        if model is None:
            continue
        paths = [directory / p for p in model.policy] or [directory]
        res = load(paths)
        if res.policy is None:
            problems.extend(f for f in res.findings if f.severity in FAILING)
            continue
        results.extend(run_case(res.policy, c, str(cf)) for c in model.case)
    if files and not results:
        problems.append(finding("STK032", str(directory), 0, "no case ran (a policy set that "
                                "does not load runs none; a file with no [[case]] decides "
                                "nothing)", severity="error"))
    return results, problems
