"""`stockade can-i APP ACTION [--arg k=v ...]`: would the host allow this call right now?

Decided as the gate would (like `kubectl auth can-i`), with the installed app's real grants and
the home's policy, by the gate's own steps in the gate's order: the install enabled, the
permission granted and the roles the manifest declared (`gate.grant_refusal`), then the engine;
for `rest.call`, first the REST bridge's own refusals (routes no app may ever reach, an unmapped
route naming a role: `policies.restmap.plan_route`), then the route is decided and a route that
amounts to a bridge action (`policies.restmap.MAPPED`) is decided again as that action
(`policies.restmap.translate_route`), with that action's grants, declared roles, facts and rules.
Exit 0 yes, 1 no. An allowed call is then checked as the admission checks it: a quota it would be
charged (a REST route's with its action's) with no unit free now in the home's store, or a
creation past the seat ceiling (seats counted on the home's server), is no (`quota_exceeded`).
`--list` decides every action of
the vocabulary with no arguments, then every event the app's manifest declares, so a reviewer
sees at once what an app may do and hear. An EVENT in place of the ACTION is decided as the
host decides whether that event reaches the app (`policies.events.decide_event`, the reads its
data amounts to; the app enabled and the event in its manifest first).

The facts the gate looks up on the server are looked up the same way, from the home's server
(the embedded one, or the Rocket.Chat workspace it is connected to): whether a role is
privileged (`role_privileged`), who created a target user (`target_created_by_app`,
`target_is_own_app_user`), whether it is another app's own user (`target_is_another_apps_user`)
or, for a deactivation, holds a privileged role (`target_holds_privileged_role`), whether a REST
route has a bridge action (`rest_mapped`), the id of a user a REST route names by username. What
a host name resolves to (`resolved_ips`) is not looked up (that would be a DNS query from the
operator's machine, not the host's); a decision that needs it says which `--fact` to pass. A
`--fact` given on the command line overrides a looked-up one.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from host.apps.installs import InstallRecord, InstallStore
from host.cli.app_common import existing_store, resolve
from host.cli.output import EXIT_NEGATIVE, EXIT_OK, emit_json, err_console, fail
from host.cli.policy_cmd import ARG_HELP, _parse_kv, parse_args, quota_usage, spent_quota
from host.clock import SystemClock
from host.gate.gate import grant_refusal
from host.home import Home, toml_files
from host.inert import line
from host.server.embedded import EmbeddedServer
from host.server.errors import NotFound, ServerError
from host.server.principals import Caller
from policies import Request, decide
from policies.concerns import forbid_conditions
from policies.engine import TARGET_USER_ACTIONS
from policies.events import decide_event, event_request, withheld_keys
from policies.lint import did_you_mean
from policies.loader import PolicyLoadError, load_policy
from policies.policy import Policy
from policies.restmap import ByUsername, Refusal, plan_route, translate_route
from policies.types import Decision
from policies.vocabulary import ACTIONS, EVENTS

if TYPE_CHECKING:
    from host.server.remote.server import Workspace


def _policy(home: Home) -> Policy:
    if not toml_files(home.policies_dir):
        fail(f"no policy files in {home.policies_dir}: every call is denied",
             "`stockade init` writes the shipped default", EXIT_NEGATIVE)
    try:
        return load_policy(home.policies_dir)
    except PolicyLoadError as exc:
        fail(f"the policy in {home.policies_dir} does not load: {exc}",
             f"`stockade policy check {home.policies_dir}`", EXIT_NEGATIVE)


_FACT_NEEDED = re.compile(r"\(fact ([a-z_]+)\)")

class _Server:
    """The home's server, opened at the first look-up (None: the home has none yet)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.opened = False
        self.server: Workspace | None = None

    def get(self) -> Workspace | None:
        if not self.opened:
            self.opened = True
            from host.server.remote.config import ConfigError, connected, open_remote

            if connected(self.home):  # the Rocket.Chat workspace the home serves
                try:
                    self.server = open_remote(self.home, SystemClock())
                except ConfigError as exc:
                    fail(str(exc))
            elif self.home.has_server_data():
                self.server = EmbeddedServer(self.home.server_store, SystemClock())
        return self.server


def server_facts(servers: _Server, rec: InstallRecord, action: str, args: Mapping[str, Any],
                 given: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the gate would look up for this call (`Gate._facts`), from the home's server
    (those the operator `given` on the command line are not looked up)."""
    facts: dict[str, Any] = {}
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
    server = servers.get()
    if server is None:
        return facts  # no server yet: the decision says which --fact it needs
    if roles:
        try:
            facts["role_privileged"] = any(server.is_privileged(r) for r in roles)
        except ServerError as exc:  # a workspace's permission table that cannot be read
            fail(f"cannot tell whether {', '.join(roles)[:200]} is privileged: {exc.message}",
                 "pass --fact role_privileged=false (or true), or check the workspace")
    if isinstance(uid, str):
        own = uid == rec.app_user_id
        deactivation = action == "users.deactivate"
        facts["target_is_own_app_user"] = own
        try:
            # As `Gate._facts`: the engine's guardrails refuse another app's own user and (a
            # deactivation) a privileged one whatever any_user says.
            standing = server.user_standing(uid, privileged=deactivation)
            facts["target_created_by_app"] = standing.created_by_app
            facts["target_is_another_apps_user"] = standing.own_user_of is not None and not own
            if deactivation:
                facts["target_holds_privileged_role"] = standing.privileged is not False
        except NotFound:
            fail(f"no user with id {uid!r} on this home's server",
                 "give the id of an existing user, or --fact target_created_by_app=APP")
        except ServerError as exc:
            fail(f"cannot look user {uid!r} up: {exc.message}",
                 "pass --fact target_created_by_app=APP, or check the workspace")
    return facts


class _AsTheGate:
    """One question decided by the gate's own steps, in its order (see the module docstring)."""

    def __init__(self, home: Home, rec: InstallRecord, policy: Policy,
                 given: Mapping[str, Any], now: float) -> None:
        self.rec, self.policy, self.given, self.now = rec, policy, given, now
        self.home = home
        self.servers = _Server(home)

    def ask(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        return self._admitted(
            self._rest(args) if action == "rest.call" else self._action(action, args))

    def _admitted(self, out: dict[str, Any]) -> dict[str, Any]:
        """The admission's step after an allow: a charged quota with no unit free now (in the
        home's store, for this install's rings) refuses the call, as `Ledger.admit` does."""
        if not out["allowed"]:
            return out
        for q in out["quotas"]:
            q.update(quota_usage(self.home, q["key"], q["limit"], q["window_s"]) or {})
        spent = spent_quota(out["quotas"])
        ceiling = out.get("seat_ceiling")
        if spent is None and ceiling is not None:
            used = self._seats_used()
            if used is not None and used >= ceiling:
                spent = (f"seat ceiling reached: {used} active app users of at most {ceiling} "
                         "(max_active_app_users)")
        if spent is None:
            return out
        return {**out, "allowed": False, "code": "quota_exceeded",
                "message": f"{out['message']}; {spent}"}

    def _seats_used(self) -> int | None:
        """Seats in use now, as the admission counts them (`Ledger.seats_in_use` over the home's
        server); None when the home has no store or server yet, or they cannot be read."""
        server = self.servers.get()
        if server is None or not self.home.has_host_store():
            return None
        try:
            from host.ledger.ledger import Ledger

            return Ledger(self.home.host_store, SystemClock()).seats_in_use(server.seats_in_use)
        except Exception:  # noqa: BLE001 - a courtesy, as quota usage is (`quota_usage`)
            return None

    def _no(self, action: str, code: str, message: str,
            facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"action": action, "allowed": False, "code": code, "message": message,
                "rules": [], "facts": dict(facts or {}), "quotas": [], "seat_ceiling": None}

    def _action(self, action: str, args: dict[str, Any],
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`Gate._decide`: the install, the grant and declared roles, the facts, the engine."""
        rec, spec = self.rec, ACTIONS[action]
        if not rec.enabled:
            return self._no(action, "permission_denied", f"app {rec.app_id!r} is disabled")
        problem = grant_refusal(rec.app_id, rec.grants, rec, spec, args)
        if problem:
            return self._no(action, "permission_denied", problem)
        facts = {**server_facts(self.servers, rec, action, args, self.given), **(extra or {}),
                 **self.given}
        d = decide(self.policy, rec.grants,
                   Request(rec.app_id, rec.install_id, action, args, facts, self.now))
        return {"action": action, "allowed": d.allowed, "code": d.code, "message": d.message,
                "rules": list(d.rules), "facts": facts, "quotas": [
                    {"key": c.key, "quota": c.quota_id, "limit": c.limit,
                     "window_s": c.window_s, "scope": c.scope} for c in d.quotas],
                "seat_ceiling": d.seat_ceiling}

    def _rest(self, args: dict[str, Any]) -> dict[str, Any]:
        """`restbridge.rest_call`'s steps, up to (not including) the admission."""
        plan = plan_route(args)
        if isinstance(plan, Refusal):
            return self._no("rest.call", plan.code, plan.message)
        out = self._action("rest.call", args, {"rest_mapped": plan.found is not None})
        if not out["allowed"] or plan.found is None:
            return out  # an unmapped route the policy allows runs on the server's dispatcher
        translated = translate_route(plan, self.rec.app_user_id or "")
        if isinstance(translated, Refusal):
            return self._no("rest.call", translated.code, translated.message, out["facts"])
        name, bridge_args = translated
        for key, value in list(bridge_args.items()):
            if isinstance(value, ByUsername):  # the gate asks users.get_by_username first
                who = self._admitted(self._action("users.get_by_username",
                                                  {"username": value.username}))
                if not who["allowed"]:
                    return {**who, "action": "rest.call", "message": f"{plan.label} names a "
                            f"user by username, a users.get_by_username: {who['message']}"}
                bridge_args[key] = self._user_id(value.username)
        inner = self._action(name, bridge_args)
        out["amounts_to"] = {"action": name, "args": bridge_args, "facts": inner["facts"]}
        if not inner["allowed"]:
            return {**out, "allowed": False, "code": inner["code"], "rules": inner["rules"],
                    "message": f"{plan.label} amounts to {name}: {inner['message']}"}
        out["rules"] = sorted({*out["rules"], *inner["rules"]})
        # The route's quotas and its action's, a key both name charged once (the gate's own).
        out["quotas"] = list({q["key"]: q for q in (*out["quotas"], *inner["quotas"])}.values())
        out["seat_ceiling"] = inner["seat_ceiling"]
        out["message"] = f"{out['message']}; as {name}: {inner['message']}"
        return out

    def _user_id(self, username: str) -> str:
        """The id of the user the gate's users.get_by_username would find (the username stands
        in when the home has no server yet: the decision then asks for the target's facts)."""
        server = self.servers.get()
        if server is None:
            return username
        rec = self.rec
        try:
            user = server.users_get_by_username(
                Caller(rec.app_id, rec.install_id, rec.app_user_id), username)
        except NotFound:
            fail(f"no user named {username!r} on this home's server",
                 "name an existing user, or give userId and --fact target_created_by_app=APP")
        except ServerError as exc:
            fail(f"cannot look user {username!r} up: {exc.message}", "check the workspace")
        return str(user["id"])


def can_i(
    ctx: typer.Context,
    app: Annotated[str, typer.Argument(help="Installed app id (or install id).")],
    action: Annotated[str | None, typer.Argument(
        help="Action name, e.g. users.create, or an event name, e.g. message.sent.")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help=ARG_HELP)] = None,
    fact: Annotated[list[str] | None, typer.Option(
        "--fact", help="Host fact key=value (JSON when it parses).")] = None,
    list_all: Annotated[bool, typer.Option("--list", help="Every action, decided with no "
                                                          "arguments, and every event the "
                                                          "app declares.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """Would APP be allowed ACTION now (or receive EVENT)? Exit 0 yes, 1 no (as the gate
    decides: its real grants, declared roles, the home's policy; a REST route as the bridge
    action it amounts to; an event as the reads its data amounts to)."""
    home: Home = ctx.obj
    if action is None and not list_all:
        fail("name an ACTION, or pass --list", "e.g. stockade can-i greeter messages.send")
    if action is not None and action not in EVENTS and action not in ACTIONS:
        # Either kind may be meant: the suggestion is drawn from both (a misspelt event was
        # offered the nearest action).
        fail(f"unknown action or event {action!r}"
             f"{did_you_mean(action, [*ACTIONS, *EVENTS])}",
             "`stockade policy schema` lists every action; docs/EVENTS.md every event")
    store: InstallStore = existing_store(home, app)
    with store:
        rec = resolve(store, app)
    policy = _policy(home)
    args = parse_args(arg or [])
    given = _parse_kv(fact or [], "--fact")
    gate = _AsTheGate(home, rec, policy, given, time.time())

    def one(name: str, a: dict[str, Any]) -> dict[str, Any]:
        out = {**gate.ask(name, a), "action": name, "args": a}
        needed = _FACT_NEEDED.search(out["message"])
        if needed:
            out["needs_fact"] = needed.group(1)
        elif "supplied no facts about the target user" in out["message"]:
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
            elif r["code"] == "quota_exceeded":
                r["answer"], why = "no", r["message"]
            elif not rec.enabled:
                r["answer"], why = "no", "the app is disabled"
            elif perm not in rec.grants:
                r["answer"], why = "no", f"{perm} not granted"
            elif not permits:
                r["answer"], why = "no", "no policy rule permits it for this app"
            elif blocking := [x.id for x in policy.plan(rec.app_id, name)[0]
                              if not forbid_conditions(x, name)]:
                # No `when` key of these forbids concerns the action: whatever the arguments,
                # the engine refuses every call (a forbid beats any permit).
                r["answer"], why = "no", (f"forbidden whatever its arguments by rule(s) "
                                          f"{', '.join(blocking)} (a forbid beats any permit)")
            else:
                r["answer"] = "depends"
                why = (f"on its arguments (rule {', '.join(permits)}); ask with "
                       f"`can-i {rec.app_id} {name} --arg ...`")
            rows.append(r)
            r["why"] = why
        heard = [event_answer(rec, policy, name) for name in sorted(rec.manifest.events)]
        if json_out:
            emit_json({"app_id": rec.app_id, "revision": policy.revision, "actions": rows,
                       "events": heard})
        else:
            for r in rows:
                err_console.print(line(f"{r['answer']:<8} {r['action']:<27} {r['why']}"))
            for e in heard:
                err_console.print(line(f"{e['answer']:<8} {'event ' + e['event']:<27} "
                                       f"{e['message']}"))
            # The app id and grants are the install row's (host.db): inert (DESIGN rule 12).
            err_console.print(line(f"({rec.app_id}'s grants: "
                                   f"{', '.join(sorted(rec.grants)) or 'none'}"
                                   f"; policy {policy.revision[:19]})"))
        return
    assert action is not None
    if action in EVENTS:
        e = event_answer(rec, policy, action)
        if json_out:
            emit_json({"app_id": rec.app_id, "revision": policy.revision, **e})
        else:
            typer.echo(e["answer"])
            err_console.print(line(f"{e['code']}: {e['message']}"))
        raise typer.Exit(EXIT_OK if e["allowed"] else EXIT_NEGATIVE)
    r = one(action, args)
    if json_out:
        emit_json({"app_id": rec.app_id, "revision": policy.revision, **r})
    else:
        typer.echo("yes" if r["allowed"] else "no")
        err_console.print(line(f"{r['code']}: {r['message']}"))
        if "needs_fact" in r:
            example = _EXAMPLE.get(r["needs_fact"], f"--fact {r['needs_fact']}=VALUE")
            err_console.print(f"hint: the host looks this up when the call is made; here pass "
                              f"--fact {r['needs_fact']}=... (e.g. {example})",
                              markup=False, highlight=False)
    raise typer.Exit(EXIT_OK if r["allowed"] else EXIT_NEGATIVE)


def event_answer(rec: InstallRecord, policy: Policy, event: str) -> dict[str, Any]:
    """Whether `event` reaches the installed app, as the host chooses an event's receivers:
    the app enabled, the event in its manifest, then the policy on what its data amounts to."""
    if not rec.enabled:
        decision = Decision(allowed=False, code="permission_denied",
                            message="the app is disabled: it receives no events")
    elif event not in rec.manifest.events:
        decision = Decision(allowed=False, code="permission_denied",
                            message=f"the app's manifest does not declare {event}")
    else:
        decision = decide_event(policy, rec.grants, rec.app_id, rec.install_id, event)
    # The keys it would get as None (`EventSpec.withheld`: a message's room), said with the
    # refusal of the read each one is: "yes" alone hid that the room never arrives.
    withheld = sorted(withheld_keys(policy, rec.grants, rec.app_id, rec.install_id, event)
                      ) if decision.allowed else []
    message, spec = decision.message, EVENTS[event]
    for action in dict.fromkeys(a for k, a in spec.withheld if k in withheld):
        keys = ", ".join(k for k, a in spec.withheld if a == action)
        why = decide(policy, rec.grants, event_request(rec.app_id, rec.install_id, action))
        message += f"; it arrives without {keys} (None): {why.message}"
    return {"event": event, "allowed": decision.allowed,
            "answer": "yes" if decision.allowed else "no", "code": decision.code,
            "message": message, "rules": list(decision.rules),
            "amounts_to": list(EVENTS[event].amounts_to), "withheld": withheld}


_EXAMPLE = {
    "resolved_ips": "--fact resolved_ips='[\"ADDRESS\", ...]' as the host's resolver answers",
    "role_privileged": "--fact role_privileged=false",
    "target_created_by_app": "--arg user_id=ID of a user on this home's server, or "
                             "--fact target_created_by_app=APP",
    "rest_mapped": "--fact rest_mapped=true",
}


def register(root: typer.Typer) -> None:
    root.command("can-i")(can_i)
