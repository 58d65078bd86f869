"""`stockade policy`: check, explain, diff, fmt, test and schema for policy files."""
from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from host.cli.output import EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, emit_json, err_console, fail
from host.inert import host, line
from policies import Request, decide
from policies.cases import run_dir
from policies.diff import Places, compare
from policies.findings import FAILING, Finding, sort_findings
from policies.loader import load
from policies.model import PolicyFile
from policies.policy import Policy, compile_policy

if TYPE_CHECKING:  # the install store (pydantic manifests) is imported by `explain` alone
    from host.apps.installs import InstallRecord

app = typer.Typer(name="policy", help="Review, explain, diff, format and test policy files.",
                  no_args_is_help=True)

_SEV_STYLE = {"error": "bold red", "security-warning": "red", "warning": "yellow",
              "suggestion": "cyan"}


def _print_findings(findings: list[Finding]) -> None:
    for f in findings:
        style = _SEV_STYLE.get(f.severity, "")
        # location and message quote the policy author's text: inert (DESIGN rule 12).
        err_console.print(line(f"{f.location}: ", host(f.severity, style), f" {f.code} ",
                               f.message))


def _require_paths(paths: list[Path]) -> None:
    for p in paths:
        if not p.exists() and not p.is_symlink():
            fail(f"{p} does not exist", "give policy files (*.toml) or a folder of them")


def _load_or_fail(paths: list[Path]) -> Policy:
    _require_paths(paths)
    res = load(paths)
    if res.policy is None:
        _print_findings([f for f in res.findings if f.severity in FAILING])
        fail(f"policy {', '.join(map(str, paths))} refused", "fix the errors above "
             "(`stockade policy check` lists every finding)")
    return res.policy


# `--fail-on LEVEL`: the severities at or above LEVEL make `policy check` exit 1.
_SEVERITY_ORDER = ("suggestion", "warning", "security-warning", "error")


@app.command("check")
def check_cmd(
    files: Annotated[list[Path], typer.Argument(help="Policy files or folders (one set).")],
    fail_on: Annotated[str, typer.Option(
        "--fail-on", help="Lowest severity that fails: error, security-warning (default), "
        "warning or suggestion.")] = "security-warning",
    as_json: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """Report every finding in one pass: schema errors and lint together, each with file:line,
    a stable code and a severity. Exit 1 on any finding at or above --fail-on."""
    if fail_on not in _SEVERITY_ORDER:
        fail(f"--fail-on {fail_on!r} is not a severity",
             f"one of: {', '.join(reversed(_SEVERITY_ORDER))}")
    _require_paths(files)
    res = load(files)
    findings = sort_findings(res.findings)
    levels = set(_SEVERITY_ORDER[_SEVERITY_ORDER.index(fail_on):])
    bad = any(f.severity in levels for f in findings)
    if as_json:
        emit_json({"ok": not bad, "fail_on": fail_on,
                   "loads": res.policy is not None,
                   "revision": res.policy.revision if res.policy else None,
                   "findings": [f.to_json() for f in findings]})
    else:
        _print_findings(findings)
        verdict = host("refused", "red") if bad else host("ok", "green")
        err_console.print(line(f"{len(findings)} finding(s): ", verdict))
    raise typer.Exit(EXIT_NEGATIVE if bad else EXIT_OK)


# Arguments the engine reads as lists: `--arg roles=bot,livechat-agent` means a list of two.
LIST_ARGS = frozenset({"roles"})


ARG_HELP = ("Argument key=value, as an app sends it: the value is text (username=12345 is the "
            "string \"12345\"), except that one starting with { or [ is JSON when it parses "
            "(body='{\"a\": 1}', roles='[\"bot\"]') and roles=a,b is a list; key:=JSON is "
            "always JSON (limit:=10, open:=true, department:=null, and text:='\"{hi}\"' for "
            "text that starts with a brace).")


def parse_args(items: list[str]) -> dict[str, Any]:
    """`--arg` values as an app sends them (see ARG_HELP). An app's arguments are strings
    unless its API says otherwise, and the gate receives them so: reading `username=12345` as
    the number 12345 once made can-i say no where the gate says yes."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        as_json = key.endswith(":")
        key = key[:-1] if as_json else key
        if not sep or not key:
            fail(f"--arg {item!r} is not key=value or key:=JSON",
                 "e.g. --arg role=bot, --arg roles=bot,livechat-agent or --arg limit:=10")
        if as_json:
            try:
                out[key] = json.loads(raw)
            except ValueError:
                fail(f"--arg {item!r}: {raw!r} is not JSON",
                     "key:=VALUE takes JSON (10, true, null, \"text\", [..], {..}); "
                     "key=VALUE takes text")
        elif raw[:1] in ("{", "["):
            try:
                out[key] = json.loads(raw)
            except ValueError:
                out[key] = raw
        elif key in LIST_ARGS:
            out[key] = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            out[key] = raw
    return out


def _parse_kv(items: list[str], what: str) -> dict[str, Any]:
    """`--fact` values: JSON when they parse (facts are bools, lists, null), else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"{what} {item!r} is not key=value", f"e.g. {what} role_privileged=false "
                 "(values are JSON when they parse, else text)")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
        if key in LIST_ARGS and isinstance(out[key], str):
            out[key] = [v.strip() for v in out[key].split(",") if v.strip()]
    return out


def _parse_time(at: str | None) -> float:
    if at is None:
        return datetime.now().timestamp()
    try:
        return float(at)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        fail(f"--at {at!r} is neither epoch seconds nor ISO 8601", "e.g. --at 2025-01-31T12:00")


def quota_usage(home: Any, key: str, limit: int, window_s: int) -> dict[str, Any] | None:
    """A quota ring's units in the window now and when the next frees, as the ledger counts
    them in the home's store (None: no store, or it cannot be read: a courtesy)."""
    if not getattr(home, "has_host_store", lambda: False)():
        return None
    try:
        ledger_mod = importlib.import_module("host.ledger.ledger")
        from host.clock import SystemClock

        state = ledger_mod.Ledger(home.host_store, SystemClock()).quota_state(
            key, limit, window_s)
    except Exception as exc:  # usage is a courtesy; the decision above stands without it  # noqa: BLE001 - usage display is best effort
        err_console.print(line(host("quota usage unavailable: ", "dim"), str(exc)))
        return None
    return {"used": getattr(state, "used", None),
            "next_free_at": getattr(state, "next_free_at", None)}


def _installed(ctx: typer.Context, app_id: str) -> InstallRecord | None:
    """The install of `app_id` in the home, if it has one: its quota rings are keyed by its
    install id, and the gate decides with its grants."""
    home = ctx.obj
    if not getattr(home, "has_host_store", lambda: False)():
        return None
    from host.apps.installs import InstallStore

    try:
        with InstallStore(home.host_store) as store:
            return store.by_app(app_id)
    except Exception:  # noqa: BLE001 - a courtesy: without it, explain decides as before
        return None


def spent_quota(quotas: list[dict[str, Any]]) -> str | None:
    """Why the ledger's admission would refuse the call now: a charged quota with no unit free
    in its window (`QuotaState.next_free_at` set), in the words the gate's refusal uses."""
    for q in quotas:
        at = q.get("next_free_at")
        if at is not None:
            when = datetime.fromtimestamp(float(at), UTC).isoformat().replace("+00:00", "Z")
            return (f"quota {q['key']} exceeded: at most {q['limit']} per {q['window_s']}s "
                    f"({q['used']} used); next unit frees at {when}")
    return None


def check_action(action: str) -> None:
    """An action the vocabulary does not know is a usage error, with a did-you-mean."""
    from policies.lint import did_you_mean
    from policies.vocabulary import ACTIONS

    if action not in ACTIONS:
        fail(f"unknown action {action!r}{did_you_mean(action, list(ACTIONS))}",
             "`stockade policy schema` lists every action")


@app.command("explain")
def explain_cmd(
    ctx: typer.Context,
    policy: Annotated[list[Path], typer.Option("--policy", help="Policy file or folder.")],
    app_id: Annotated[str, typer.Option("--app", help="App id.")],
    action: Annotated[str, typer.Option("--action", help="Action name, e.g. users.create.")],
    install: Annotated[str | None, typer.Option(
        "--install", help="Install id (quota keys; default: the app's install in this home, if "
        "any).")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help=ARG_HELP)] = None,
    args_json: Annotated[str | None, typer.Option("--args-json", help="Arguments as JSON.")] = None,
    fact: Annotated[list[str] | None, typer.Option("--fact", help="Host fact key=value.")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="Granted permission (default: the app's grants when it is "
                     "installed in this home, else the action's permission)."),
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Time: epoch seconds or ISO 8601.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """Decide one request and show why, with its quota charges (and usage when known). A call
    the policy allows while one of its quotas has no unit free now is `quota_exceeded`, as the
    gate's admission refuses it (usage is read in this home's store, for the app's install)."""
    from policies.vocabulary import ACTIONS

    check_action(action)
    pol = _load_or_fail(policy)
    args: dict[str, Any] = {}
    if args_json is not None:
        try:
            loaded = json.loads(args_json)
        except ValueError as exc:
            fail(f"--args-json is not JSON: {exc}")
        if not isinstance(loaded, dict):
            fail("--args-json must be a JSON object")
        args.update(loaded)
    args.update(parse_args(arg or []))
    facts = _parse_kv(fact or [], "--fact")
    rec = _installed(ctx, app_id) if install is None or grant is None else None
    if grant is not None:
        grants = frozenset(grant)
    elif rec is not None:
        grants = rec.grants  # the gate's: a role's action needs its own permission too
    else:
        spec = ACTIONS.get(action)
        grants = frozenset({spec.permission}) if spec else frozenset()
    if install is None:
        install = rec.install_id if rec is not None else "explain"
    d = decide(pol, grants, Request(app_id, install, action, args, facts, _parse_time(at)))
    quotas = []
    for c in d.quotas:
        q: dict[str, Any] = {"key": c.key, "quota": c.quota_id, "limit": c.limit,
                             "window_s": c.window_s, "scope": c.scope}
        usage = quota_usage(ctx.obj, c.key, c.limit, c.window_s)
        if usage is not None:
            q.update(usage)
        quotas.append(q)
    # The window is read now: `--at` asks about another time, whose usage is not known.
    full = spent_quota(quotas) if d.allowed and at is None else None
    allowed, code, message = d.allowed, str(d.code), d.message
    if full is not None:
        allowed, code, message = False, "quota_exceeded", f"{message}; {full}"
    out = {"allowed": allowed, "code": code, "message": message, "rules": list(d.rules),
           "quotas": quotas, "seat_ceiling": d.seat_ceiling, "revision": pol.revision,
           "grants": sorted(grants)}
    if as_json:
        emit_json(out)
    else:
        color = "green" if allowed else "red"
        err_console.print(line(host(code, color), ": ", message))
        for q in quotas:
            used = f" used {q['used']}" if "used" in q else ""
            err_console.print(line(f"  quota {q['quota']}: {q['key']} limit {q['limit']} per "
                                   f"{q['window_s']}s{used}"))
        if d.seat_ceiling is not None:
            err_console.print(f"  seat ceiling: {d.seat_ceiling} active app users")
        err_console.print(host(f"policy {pol.revision}", "dim"))
    raise typer.Exit(EXIT_OK if allowed else EXIT_NEGATIVE)


def _load_for_diff(path: Path, *, in_force: bool) -> tuple[Policy, Places, list[Finding]]:
    """OLD must load. NEW is compared even when the host would refuse it (an admin-class role,
    a missing quota), so the reviewer sees what it tries; its failing findings come along."""
    _require_paths([path])
    res = load([path])
    bad = [f for f in res.findings if f.severity in FAILING]
    if res.policy is not None:
        return res.policy, Places(res.sources), bad
    models = [(s.name, s.model) for s in res.sources if s.model is not None]
    if in_force or len(models) != len(res.sources) or not models:
        _print_findings(bad)
        fail(f"policy {path} refused", "fix the errors above (`stockade policy check` lists "
             "every finding)")
    return compile_policy(models), Places(res.sources), bad


_DIRECTION_MARK = {"widens": ("+", "red"), "narrows": ("-", "green"), "refused": ("!", "yellow")}


@app.command("diff")
def diff_cmd(
    old: Annotated[Path, typer.Argument(help="The policy in force (file or folder).")],
    new: Annotated[Path, typer.Argument(help="The proposed policy (file or folder).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """What NEW changes, both ways, each with file:line:column: widenings (+), narrowings (-)
    and admin-class roles the engine refuses (!). Exit 1 when NEW grants anything OLD did not
    or the host would refuse NEW; 0 when it only narrows or is the same."""
    old_pol, old_places, _ = _load_for_diff(old, in_force=True)
    new_pol, new_places, refused = _load_for_diff(new, in_force=False)
    changes = compare(old_pol, new_pol, old_places, new_places)
    widens = any(c.direction == "widens" for c in changes)
    if as_json:
        emit_json({"widens": widens, "narrows": any(c.direction == "narrows" for c in changes),
                   "loads": not refused, "refused_by": [f.to_json() for f in refused],
                   "changes": [c.to_json() for c in changes]})
    else:
        for c in changes:
            mark, style = _DIRECTION_MARK[c.direction]
            # where/detail quote the policy author's ids and names: inert (DESIGN rule 12).
            err_console.print(line(host(f"{mark} {c.direction}", style), " ", str(c)))
        if refused:
            _print_findings(refused)
            err_console.print(host("NEW would be refused by the host (it keeps the policy in "
                                   "force)", "red"))
        err_console.print("NEW grants more" if widens else "NEW grants nothing OLD did not")
    raise typer.Exit(EXIT_NEGATIVE if widens or refused else EXIT_OK)


@app.command("test")
def test_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder holding *.toml and *.cases.toml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """Run the table-driven decision cases kept next to the policy files."""
    if not directory.is_dir():
        fail(f"{directory} is not a folder", "give the folder that holds *.cases.toml")
    results, problems = run_dir(directory)
    # run_dir reports "no case ran" as a problem: zero cases decided is never a pass.
    if problems and not results and not as_json:
        _print_findings(problems)
        fail("no cases could run", "fix the files above")
    failed = [r for r in results if not r.ok]
    if as_json:
        emit_json({"ok": not failed and not problems, "passed": len(results) - len(failed),
                   "failed": len(failed), "results": [r.to_json() for r in results],
                   "problems": [p.to_json() for p in problems]})
        if problems and not results:
            raise typer.Exit(EXIT_USAGE)
    else:
        _print_findings(problems)
        for r in results:
            mark = host("ok  ", "green") if r.ok else host("FAIL", "red")
            err_console.print(line(mark, " ", r.name))
            if not r.ok:
                err_console.print(line(f"     expected {r.expected}, got {r.got}: ", r.message))
        err_console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(EXIT_NEGATIVE if failed or problems else EXIT_OK)


@app.command("schema")
def schema_cmd(
    as_json: Annotated[bool, typer.Option(
        "--json", help="Accepted for symmetry: the schema is always JSON on stdout.")] = False,
) -> None:
    """Print the JSON Schema of policy files (from the pydantic models) to stdout."""
    emit_json(PolicyFile.model_json_schema(by_alias=True))


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.add_typer(app, name="policy")
