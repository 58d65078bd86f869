"""`stockade can-i APP ACTION [--arg k=v ...]`: would the host allow this call right now?

Decided by the real engine with the installed app's real grants and the home's policy, as the
gate would (like `kubectl auth can-i`): exit 0 yes, 1 no. `--list` decides every action of the
vocabulary with no arguments, so a reviewer sees at once what an app may do.
"""
from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from host.apps.installs import InstallStore
from host.cli.app_common import existing_store, resolve
from host.cli.output import EXIT_NEGATIVE, EXIT_OK, emit_json, err_console, fail
from host.cli.policy_cmd import _parse_kv, check_action
from host.home import Home
from policies import Request, decide
from policies.loader import PolicyLoadError, load_policy
from policies.policy import Policy
from policies.vocabulary import ACTIONS


def _policy(home: Home) -> Policy:
    if not any(home.policies_dir.glob("*.toml")):
        fail(f"no policy files in {home.policies_dir}: every call is denied",
             "`stockade init` writes the shipped default", EXIT_NEGATIVE)
    try:
        return load_policy(home.policies_dir)
    except PolicyLoadError as exc:
        fail(f"the policy in {home.policies_dir} does not load: {exc}",
             f"`stockade policy check {home.policies_dir}`", EXIT_NEGATIVE)


def can_i(
    ctx: typer.Context,
    app: Annotated[str, typer.Argument(help="Installed app id (or install id).")],
    action: Annotated[str | None, typer.Argument(help="Action name, e.g. users.create.")] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", help="Argument key=value (JSON when it parses; roles=a,b is a list).")] = None,
    fact: Annotated[list[str] | None, typer.Option("--fact", help="Host fact key=value.")] = None,
    list_all: Annotated[bool, typer.Option("--list", help="Every action, decided with no "
                                                          "arguments.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """Would APP be allowed ACTION now? Exit 0 yes, 1 no (its real grants, the home's policy)."""
    home: Home = ctx.obj
    if action is None and not list_all:
        fail("name an ACTION, or pass --list", "e.g. stockade can-i greeter messages.send")
    if action is not None:
        check_action(action)
    store: InstallStore = existing_store(home, app)
    with store:
        rec = resolve(store, app)
    policy = _policy(home)
    args = _parse_kv(arg or [], "--arg")
    facts = _parse_kv(fact or [], "--fact")
    now = time.time()

    def one(name: str, a: dict[str, Any]) -> dict[str, Any]:
        d = decide(policy, rec.grants, Request(rec.app_id, rec.install_id, name, a, facts, now))
        return {"action": name, "allowed": d.allowed, "code": d.code, "message": d.message,
                "rules": list(d.rules)}

    if list_all:
        rows = []
        for name in sorted(ACTIONS):
            r = one(name, {})
            permits = [x.id for x in policy.rules_for(name) if x.effect == "permit"
                       and (x.any_app or rec.app_id in x.apps)]
            perm = ACTIONS[name].permission
            if r["allowed"]:
                r["answer"], why = "yes", f"rule {', '.join(r['rules']) or '-'}"
            elif perm not in rec.grants:
                r["answer"], why = "no", f"{perm} not granted"
            elif not permits:
                r["answer"], why = "no", "no policy rule permits it for this app"
            else:
                r["answer"] = "depends"
                why = (f"on its arguments (rule {', '.join(permits)}); ask with "
                       f"`can-i {rec.app_id} {name} --arg ...`")
            rows.append(r)
            r["why"] = why
        if json_out:
            emit_json({"app_id": rec.app_id, "revision": policy.revision, "actions": rows})
        else:
            for r in rows:
                err_console.print(f"{r['answer']:<8} {r['action']:<27} {r['why']}",
                                  markup=False, highlight=False)
            err_console.print(f"({rec.app_id}'s grants: {', '.join(sorted(rec.grants)) or 'none'}"
                              f"; policy {policy.revision[:19]})", markup=False, highlight=False)
        return
    assert action is not None
    r = one(action, args)
    if json_out:
        emit_json({"app_id": rec.app_id, "revision": policy.revision, **r})
    else:
        typer.echo("yes" if r["allowed"] else "no")
        err_console.print(f"{r['code']}: {r['message']}", markup=False, highlight=False)
    raise typer.Exit(EXIT_OK if r["allowed"] else EXIT_NEGATIVE)


def register(root: typer.Typer) -> None:
    root.command("can-i")(can_i)
