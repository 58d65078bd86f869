"""`stockade can-i APP ACTION [--arg k=v ...]`: would the host allow this call right now?

Decided by the real engine with the installed app's real grants and the home's policy, as the
gate would (like `kubectl auth can-i`): exit 0 yes, 1 no. `--list` decides every action of the
vocabulary with no arguments, so a reviewer sees at once what an app may do.

The facts the gate looks up on the server are looked up the same way, from the home's server
(the embedded one, or the Rocket.Chat workspace it is connected to): whether a role is
privileged (`role_privileged`), who created a target user (`target_created_by_app`,
`target_is_own_app_user`), whether a REST route has a bridge action (`rest_mapped`). What a
host name resolves to (`resolved_ips`) is not looked up (that would be a DNS query from the
operator's machine, not the host's); a decision that needs it says which
`--fact` to pass. A `--fact` given on the command line overrides a looked-up one.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from host.apps.installs import InstallRecord, InstallStore
from host.cli.app_common import existing_store, resolve
from host.cli.output import EXIT_NEGATIVE, EXIT_OK, emit_json, err_console, fail
from host.cli.policy_cmd import _parse_kv, check_action
from host.clock import SystemClock
from host.gate.rest_routes import find
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound, ServerError
from policies import Request, decide
from policies.engine import TARGET_USER_ACTIONS
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


_FACT_NEEDED = re.compile(r"\(fact ([a-z_]+)\)")


def server_facts(home: Home, rec: InstallRecord, action: str, args: dict[str, Any],
                 given: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the gate would look up for this call, from the home's embedded server (those
    the operator `given` on the command line are not looked up)."""
    facts: dict[str, Any] = {}
    if action == "rest.call":
        method, route = args.get("method"), args.get("route")
        if isinstance(method, str) and isinstance(route, str):
            facts["rest_mapped"] = find(method, route) is not None
    roles: list[str] = []
    if action in ("roles.assign", "roles.remove") and isinstance(args.get("role"), str):
        roles = [args["role"]]
    elif action == "users.create" and isinstance(args.get("roles"), list):
        roles = [r for r in args["roles"] if isinstance(r, str)]
    if "role_privileged" in given:
        roles = []
    uid = args.get("user_id") if action in TARGET_USER_ACTIONS else None
    if "target_created_by_app" in given or "target_is_own_app_user" in given:
        uid = None
    if not roles and not isinstance(uid, str):
        return facts
    from host.server.remote.config import ConfigError, connected, open_remote
    from host.server.remote.server import Workspace

    server: Workspace
    if connected(home):  # the Rocket.Chat workspace the home serves (docs/ROCKETCHAT.md)
        try:
            server = open_remote(home, SystemClock())
        except ConfigError as exc:
            fail(str(exc))
    elif not home.has_server_data():
        return facts  # no server yet: the decision says which --fact it needs
    else:
        server = EmbeddedServer(home.server_store, SystemClock())
    if roles:
        try:
            facts["role_privileged"] = any(server.is_privileged(r) for r in roles)
        except ServerError as exc:  # a workspace's permission table that cannot be read
            fail(f"cannot tell whether {', '.join(roles)[:200]} is privileged: {exc.message}",
                 "pass --fact role_privileged=false (or true), or check the workspace")
    if isinstance(uid, str):
        facts["target_is_own_app_user"] = uid == rec.app_user_id
        try:
            facts["target_created_by_app"] = server.user_created_by(uid)
        except NotFound:
            fail(f"no user with id {uid!r} on this home's server",
                 "give the id of an existing user, or --fact target_created_by_app=APP")
        except ServerError as exc:
            fail(f"cannot look user {uid!r} up: {exc.message}",
                 "pass --fact target_created_by_app=APP, or check the workspace")
    return facts


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
    given = _parse_kv(fact or [], "--fact")
    now = time.time()

    def one(name: str, a: dict[str, Any]) -> dict[str, Any]:
        facts = {**server_facts(home, rec, name, a, given), **given}
        d = decide(policy, rec.grants, Request(rec.app_id, rec.install_id, name, a, facts, now))
        out = {"action": name, "allowed": d.allowed, "code": d.code, "message": d.message,
               "rules": list(d.rules), "facts": facts}
        needed = _FACT_NEEDED.search(d.message)
        if needed:
            out["needs_fact"] = needed.group(1)
        elif "supplied no facts about the target user" in d.message:
            out["needs_fact"] = "target_created_by_app"
        return out

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
        if "needs_fact" in r:
            example = _EXAMPLE.get(r["needs_fact"], f"--fact {r['needs_fact']}=VALUE")
            err_console.print(f"hint: the host looks this up when the call is made; here pass "
                              f"--fact {r['needs_fact']}=... (e.g. {example})",
                              markup=False, highlight=False)
    raise typer.Exit(EXIT_OK if r["allowed"] else EXIT_NEGATIVE)


_EXAMPLE = {
    "resolved_ips": "--fact resolved_ips='[\"ADDRESS\", ...]' as the host's resolver answers",
    "role_privileged": "--fact role_privileged=false",
    "target_created_by_app": "--arg user_id=ID of a user on this home's server, or "
                             "--fact target_created_by_app=APP",
    "rest_mapped": "--fact rest_mapped=true",
}


def register(root: typer.Typer) -> None:
    root.command("can-i")(can_i)
