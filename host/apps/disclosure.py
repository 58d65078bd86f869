"""The install-time disclosure: what an app will be able to do, shown before anything runs.

For every permission the manifest asks: plain words, risk, the author's reason, and the limits
the active policy puts on it (roles, user types, domains, REST routes, quotas), or a plain
"policy does not permit this" when no permit rule covers it. Then the events, each one the
policy keeps from the app marked (an event is delivered only when the policy permits the reads
its data amounts to, `EventSpec.amounts_to`: `host.gate.eventpolicy`), the settings
(secret ones marked, values never shown), the publisher/signature status, and dangerous
combinations called out.

The policy is read through a small duck-typed view (`PolicyView`) that matches
`policies.policy.Policy` (compiled rules and quotas), so this module needs no engine internals.
`build_disclosure` returns data; `render_disclosure` prints it (rich, to stderr); `to_dict` is
the `--json` form.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.text import Text

from host.apps.manifest import Manifest
from host.apps.publisher import SignatureCheck
from host.inert import (
    AUTHOR_STYLE,
    MAX_BLOCK,
    MAX_BLOCK_LINES,
    author,
    field_grid,
    host,
    line,
    visible,
    wrapping_table,
)
from policies.vocabulary import ACTIONS, ADMIN_CLASS_ROLES, EVENTS, PERMISSIONS, ROLE_AMOUNTS_TO

NOT_PERMITTED = ("policy does not permit this — the app will get PermissionDenied, and no event "
                 "carrying this data")
_RISK_STYLE = {"low": "green", "medium": "yellow", "high": "bold red",
               "critical": "bold white on red"}


# ---- the view of a policy this module needs (matches policies.policy.Policy) --------------------

class RuleView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def effect(self) -> str: ...
    @property
    def any_app(self) -> bool: ...
    @property
    def apps(self) -> frozenset[str]: ...
    @property
    def actions(self) -> frozenset[str]: ...
    @property
    def user_types(self) -> frozenset[str] | None: ...
    @property
    def roles(self) -> frozenset[str] | None: ...
    @property
    def field_keys(self) -> frozenset[str] | None: ...
    @property
    def any_user(self) -> bool: ...
    @property
    def domains(self) -> tuple[str, ...] | None: ...
    @property
    def allow_private_hosts(self) -> frozenset[str]: ...
    @property
    def rest_routes(self) -> frozenset[str] | None: ...
    @property
    def rest_fields(self) -> frozenset[str] | None: ...


class QuotaView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def any_app(self) -> bool: ...
    @property
    def apps(self) -> frozenset[str]: ...
    @property
    def action(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def window_s(self) -> int: ...
    @property
    def scope(self) -> str: ...


class PolicyView(Protocol):
    @property
    def revision(self) -> str: ...
    @property
    def rules(self) -> Sequence[RuleView]: ...
    @property
    def quotas(self) -> Sequence[QuotaView]: ...
    @property
    def seat_ceiling(self) -> int | None: ...


# ---- dangerous combinations ---------------------------------------------------------------------

@dataclass(frozen=True)
class Danger:
    code: str
    severity: str
    message: str
    permissions: tuple[str, ...]


# (code, severity, permissions that must all be asked, message). Stable codes for scripts.
_DANGERS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("D001", "critical", ("users.create", "roles.assign", "livechat.agents"),
     "can mint agents with roles: create users, give them roles and make them livechat agents"),
    ("D002", "critical", ("users.create", "roles.assign"),
     "can create user accounts and give them roles"),
    ("D003", "high", ("users.create", "livechat.agents"),
     "can create new livechat agents (each one a billed seat)"),
    ("D004", "critical", ("roles.assign",),
     "can change which roles users hold (admin-class roles stay out of reach)"),
    ("D005", "critical", ("server.rest",),
     "can call server REST routes (only the routes policy lists; a route that does what a "
     "bridge action does is decided as that action, with its rules and quotas)"),
    ("D006", "high", ("http", "messages.read"),
     "can send conversation contents off-site (reads messages and makes HTTP requests)"),
    ("D007", "high", ("http", "livechat.read"),
     "can send visitor and room details off-site"),
    ("D008", "high", ("http", "users.read"),
     "can send user directory data off-site"),
    ("D009", "high", ("users.deactivate",),
     "can deactivate user accounts (only ones it created unless policy says any_user)"),
)


def dangers_for(asked: Iterable[str], events: Iterable[str] = ()) -> list[Danger]:
    """Every dangerous combination `asked` contains; superseded pairs are still listed."""
    have = set(asked)
    out = [Danger(code, sev, msg, perms) for code, sev, perms, msg in _DANGERS
           if set(perms) <= have]
    if "message.pre_send" in set(events):
        out.append(Danger("D010", "high", "sees every message before it is sent and can block "
                          "or rewrite it", ("messages.read", "messages.send")))
    return out


# ---- per-permission limits ----------------------------------------------------------------------

# What the host does with a declared app user agent, in its own words (the departments, the
# author's, follow as author text).
AGENT_DECLARED = ("manifest declares: the host makes its app user an available livechat agent "
                  "at enable (routed conversations), in: ")


@dataclass(frozen=True)
class PermissionLine:
    name: str
    plain: str
    risk: str
    reason: str
    permitted: bool | None  # None: no policy loaded, so limits are unknown
    # The host's and the policy's lines only: the column drawn in the host's style.
    limits: tuple[str, ...]
    # What the manifest declares on this permission: author text, kept apart from `limits` so
    # it is only ever drawn as author text (DESIGN rule 12; `declarations`).
    declared_roles: tuple[str, ...] | None = None
    app_user_agent: bool = False
    departments: tuple[str, ...] = ()

    def declarations(self) -> list[tuple[str, str | None]]:
        """(the host's words, the author's value or None) for each declaration: the value is
        drawn quoted, in the author's style, never inside the host's words."""
        out: list[tuple[str, str | None]] = []
        if self.declared_roles is not None:
            out.append(("manifest declares roles: ", ", ".join(self.declared_roles))
                       if self.declared_roles else ("manifest declares roles: none", None))
        if self.app_user_agent:
            out.append((AGENT_DECLARED, ", ".join(self.departments)) if self.departments
                       else (AGENT_DECLARED + "no department", None))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "plain": self.plain, "risk": self.risk, "reason": self.reason,
                "permitted_by_policy": self.permitted, "limits": list(self.limits),
                "declared_roles": None if self.declared_roles is None
                else list(self.declared_roles),
                "app_user_agent": self.app_user_agent, "departments": list(self.departments),
                # the same, as the pages show it: the host's words, then the author's value
                "declarations": [list(x) for x in self.declarations()]}


def _window(seconds: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % n == 0 and seconds >= n:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


def _join(items: Iterable[str]) -> str:
    s = sorted(items)
    return ", ".join(s) if s else "none"


# What a policy's REST route entry amounts to: the bridge actions it is decided as, () when no
# app may ever call it, None when it has no bridge action. The gate's table
# (`host.gate.rest_routes.route_actions`) is handed in by the callers above the gate.
RouteActions = Callable[[str], "tuple[str, ...] | None"]


def _rest_route_lines(r: RuleView, route_actions: RouteActions | None) -> list[str]:
    if route_actions is None:
        return [f"routes: {_join(r.rest_routes or ())}"]
    lines: list[str] = []
    for route in sorted(r.rest_routes or ()):
        acts = route_actions(route)
        if acts is None:
            if r.rest_fields is None:
                verdict = "refused: it has no bridge action and the rule lists no rest_fields"
            else:
                verdict = ("HIGH RISK: no bridge action stands behind it; it runs on the server "
                           f"carrying only the fields: {_join(r.rest_fields)}")
            lines.append(f"route {route}: {verdict}")
        elif not acts:
            lines.append(f"route {route}: refused whatever policy says")
        else:
            lines.append(f"route {route}: decided as {' / '.join(acts)} (that action's "
                         "permission, rules, quotas and seat ceiling)")
    return lines


def rest_identity_line(app_id: str, rest_as: str | None) -> str:
    """Who the server sees for this app's REST routes, in plain words."""
    if rest_as is None:
        return (f"acts as the app's own server user (app.{app_id}), never as an admin: "
                "only what is granted here")
    return (f"REST routes without a bridge action act as server user {rest_as!r}, which the "
            "operator named for this app: they get ALL of that user's server roles")


def policy_limits(policy: PolicyView, app_id: str, permission: str,
                  route_actions: RouteActions | None = None) -> tuple[bool, list[str]]:
    """(some permit covers this permission for `app_id`, human lines describing the limits)."""
    actions = {a.name for a in ACTIONS.values() if a.permission == permission}
    lines: list[str] = []
    permitted = False
    for r in sorted(policy.rules, key=lambda r: r.id):
        if not (r.any_app or app_id in r.apps):
            continue
        covered = sorted(actions & set(r.actions))
        if not covered:
            continue
        if r.effect == "forbid":
            lines.append(f"forbidden by rule {r.id}: {', '.join(covered)}")
            continue
        permitted = True
        parts = [f"rule {r.id} permits {', '.join(covered)}"]
        if permission == "users.create":
            parts.append(f"user types: {_join(r.user_types or ())}")
            parts.append(f"roles at creation: {_join(r.roles or ())}")
        if permission == "roles.assign":
            parts.append(f"roles: {_join(r.roles or ())}")
        if permission in ("users.create", "users.update") and r.field_keys is not None:
            parts.append(f"custom fields: {_join(r.field_keys)}")
        if permission == "http":
            parts.append(f"domains: {_join(r.domains or ())}")
            if r.allow_private_hosts:
                parts.append(f"private hosts: {_join(r.allow_private_hosts)}")
        routes = _rest_route_lines(r, route_actions) if permission == "server.rest" else []
        if r.any_user and actions & {"users.deactivate", "roles.assign", "livechat.add_agent",
                                     "users.set_custom_fields"}:
            parts.append("on ANY user (not only users it created)")
        lines.append("; ".join(parts))
        if permission in ("users.create", "roles.assign"):
            # the operator reads here that listing such a role is not, alone, making agents
            for role in sorted(set(r.roles or ()) & set(ROLE_AMOUNTS_TO)):
                power = ROLE_AMOUNTS_TO[role][0]
                lines.append(f"{role} makes a livechat agent: giving it is {power} too, with "
                             f"its own permission ({ACTIONS[power].permission}) and rules")
        lines.extend(routes)  # one line per route: each says what it amounts to
    for q in sorted(policy.quotas, key=lambda q: q.id):
        if not (q.any_app or app_id in q.apps):
            continue
        if q.action in actions or (q.action == "*" and permitted):
            what = "bridge calls" if q.action == "*" else q.action
            lines.append(f"at most {q.limit} {what} per {_window(q.window_s)} (per {q.scope})")
    if permission == "users.create" and policy.seat_ceiling is not None:
        lines.append(f"workspace ceiling: {policy.seat_ceiling} active app-created users")
    if permission == "roles.assign":
        lines.append(f"never admin-class roles ({_join(ADMIN_CLASS_ROLES)}), whatever policy says")
    if not permitted:
        lines.insert(0, NOT_PERMITTED)
    return permitted, lines


def event_refusals(policy: PolicyView, app_id: str,
                   events: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(event, why) for each event the policy keeps from `app_id`: one of the actions its data
    amounts to has a forbid, or no permit, for the app. The engine's answer for these reads,
    which no rule condition concerns (`policies.events`; a test holds the two equal)."""
    out: list[tuple[str, str]] = []
    for event in events:
        spec = EVENTS.get(event)
        if spec is None:
            continue
        refused = [action for action in spec.amounts_to if _refuses(policy, app_id, action)]
        if refused or not spec.amounts_to:
            out.append((event, "not delivered: policy does not permit "
                        + (", ".join(refused) or "it")))
    return tuple(out)


def event_withholdings(policy: PolicyView | None, app_id: str, asked: Iterable[str],
                       events: Iterable[str],
                       refused: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """(event, why) for each declared event delivered without a key (`EventSpec.withheld`: a
    message's room is None to an app that may not read the room): its permission not asked
    (said whatever the policy), or no permit / a forbid for the app (`event_refusals`' rule)."""
    asked, skip = set(asked), set(refused)
    out: list[tuple[str, str]] = []
    for event in events:
        spec = EVENTS.get(event)
        if spec is None or event in skip:
            continue
        notes = []
        for action in dict.fromkeys(a for _k, a in spec.withheld):
            keys = ", ".join(k for k, a in spec.withheld if a == action)
            permission = ACTIONS[action].permission
            if permission not in asked:
                notes.append(f"arrives without {keys}: {action} needs {permission}, not asked")
            elif policy is not None and _refuses(policy, app_id, action):
                notes.append(f"arrives without {keys}: policy does not permit {action}")
        if notes:
            out.append((event, "; ".join(notes)))
    return tuple(out)


def _refuses(policy: PolicyView, app_id: str, action: str) -> bool:
    rules = [r for r in policy.rules if (r.any_app or app_id in r.apps) and action in r.actions]
    return any(r.effect == "forbid" for r in rules) or not rules


# ---- the disclosure ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Disclosure:
    app_id: str
    name: str
    version: str
    author: str
    content_hash: str
    signature: SignatureCheck
    permissions: tuple[PermissionLine, ...]
    events: tuple[str, ...]
    settings: tuple[dict[str, Any], ...]
    dangers: tuple[Danger, ...]
    policy_revision: str | None
    app_users: int | None = None  # users this install created so far (None: unknown)
    # Why `app_users` is None for an installed app (`lifecycle_seams.app_users_counted`): a
    # count the host could not take is said so, never shown as 0 nor left out ("" otherwise).
    app_users_unknown: str = ""
    description: str = ""  # the author's own words: shown inert, under a label
    notes: tuple[str, ...] = field(default=())
    # (event, why) for each declared event the policy keeps from the app (`event_refusals`)
    events_refused: tuple[tuple[str, str], ...] = ()
    # (event, why) for each declared event delivered without a key (`event_withholdings`)
    events_withheld: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The `--json` form (never holds a setting value)."""
        return {
            "app_id": self.app_id, "name": self.name, "version": self.version,
            "author": self.author, "content_hash": self.content_hash,
            "signature": self.signature.to_dict(),
            "permissions": [p.to_dict() for p in self.permissions],
            "events": list(self.events),
            "events_refused": [{"event": e, "why": why} for e, why in self.events_refused],
            "events_withheld": [{"event": e, "why": why} for e, why in self.events_withheld],
            "settings": [dict(s) for s in self.settings],
            "dangers": [{"code": d.code, "severity": d.severity, "message": d.message,
                         "permissions": list(d.permissions)} for d in self.dangers],
            "policy_revision": self.policy_revision, "app_users": self.app_users,
            "app_users_unknown": self.app_users_unknown or None,
            "notes": list(self.notes), "description": self.description,
        }


def build_disclosure(
    manifest: Manifest,
    content_hash: str,
    signature: SignatureCheck,
    policy: PolicyView | None,
    *,
    app_users: int | None = None,
    app_users_unknown: str = "",
    rest_as: str | None = None,
    route_actions: RouteActions | None = None,
) -> Disclosure:
    """Everything the operator must see before consenting. Pure: no I/O.

    `rest_as` is the REST identity the operator names (or named) for this app; `route_actions`
    tells what each listed REST route amounts to (see `RouteActions`)."""
    lines = []
    for p in sorted(manifest.permission, key=lambda p: p.name):
        spec = PERMISSIONS[p.name]
        if policy is None:
            permitted: bool | None = None
            limits = ["no policy loaded: limits unknown"]
        else:
            permitted, limits = policy_limits(policy, manifest.id, p.name, route_actions)
        if p.name == "server.rest":
            limits = [rest_identity_line(manifest.id, rest_as), *limits]
        lines.append(PermissionLine(
            p.name, spec.plain, spec.risk, p.reason, permitted, tuple(limits),
            declared_roles=None if p.roles is None else tuple(p.roles),
            app_user_agent=p.app_user_agent, departments=tuple(p.departments)))
    settings = tuple(
        {"key": s.key, "type": s.type, "label": s.label, "required": s.required,
         "secret": s.secret}
        for s in manifest.setting
    )
    notes: list[str] = []
    if signature.status == "unsigned":
        notes.append("UNSIGNED: nobody vouches for this package's contents")
    elif signature.status == "unknown-publisher":
        notes.append(f"UNKNOWN PUBLISHER: signed by key {signature.kid}, which you do not trust")
    refused = () if policy is None else event_refusals(policy, manifest.id, manifest.events)
    return Disclosure(
        app_id=manifest.id, name=manifest.name, version=manifest.version,
        author=manifest.author, content_hash=content_hash, signature=signature,
        permissions=tuple(lines), events=tuple(manifest.events), settings=settings,
        dangers=tuple(dangers_for(manifest.asked, manifest.events)),
        policy_revision=None if policy is None else policy.revision,
        app_users=app_users, app_users_unknown=app_users_unknown, notes=tuple(notes),
        description=manifest.description,
        events_refused=refused,
        events_withheld=event_withholdings(policy, manifest.id, manifest.asked,
                                           manifest.events, (e for e, _ in refused)),
    )


def render_disclosure(d: Disclosure, console: Console, *, title: str = "") -> None:
    """Print the disclosure for a human (the caller passes the stderr console).

    Layout that author text cannot forge (DESIGN rule 12): the host's own lines (the title, the
    SIGNATURE verdict, DANGER, policy state) start at column 0 with a fixed host label; every
    author value (name, author, description, reasons, role names, setting labels) is inert
    (`host.inert`), quoted, and drawn only inside an indented column or a table cell."""
    # app_id and version are pattern-checked by the manifest (no spaces, no markup), so they
    # may stand in the host's title line; everything else the author wrote goes in the grid.
    console.print(line(host(f"{title or 'App'} ", "bold"), host(d.app_id, "bold"), " ",
                       host(d.version)))
    sig = d.signature
    if sig.status == "trusted":
        console.print(line(host("SIGNATURE  ✔ signed by trusted publisher ", "bold green"),
                           author(sig.publisher or "?", style="bold green"),
                           host(f" (key {sig.kid})", "green")))
    else:
        for note in d.notes:
            console.print(line(host("SIGNATURE  ✘ ", "bold red"), host(note, "bold red")))
    rows = [("name", author(d.name)), ("author", author(d.author))]
    if d.description:
        rows.append(("description", author(d.description, limit=MAX_BLOCK, one_line=False,
                                           max_lines=MAX_BLOCK_LINES)))
    rows.append(("content hash", host(d.content_hash, "dim")))
    console.print(field_grid(rows))
    perm_rows: list[tuple[str | Text, ...]] = []
    for p in d.permissions:
        limits = Text("\n").join(host(visible(x, limit=MAX_BLOCK),
                                       "bold red" if p.permitted is False else "")
                                  for x in p.limits)
        # What the manifest declares stands here, with the author's reason, quoted and in the
        # author's style: padded with spaces, a name wraps inside this column, never into the
        # policy's (where a row of it could read as a host quota line).
        why = host(p.plain)
        for words, value in p.declarations():
            why.append_text(line(host("\n" + words),
                                 *(() if value is None else (author(value, limit=MAX_BLOCK),))))
        why.append_text(line(host("\n"), author(p.reason, limit=MAX_BLOCK, one_line=False,
                                                 max_lines=MAX_BLOCK_LINES,
                                                 style="italic " + AUTHOR_STYLE)))
        perm_rows.append((host(p.name), host(p.risk, _RISK_STYLE.get(p.risk, "")), why, limits))
    # Cells wrap between words (a rule id or action name is never cut, nor split when the
    # console has room for it); on a console too narrow for that, words fold, all kept.
    table = wrapping_table("Permissions asked", ("permission", "risk",
                           "what it allows / why the author asks", "limits set by policy"),
                           perm_rows, console.width, show_lines=True)
    if d.permissions:
        console.print(table)
    else:
        console.print("This app asks for no permissions.")
    if d.events:
        refused = dict(d.events_refused)  # event names: the vocabulary's, checked at install
        console.print(line(host("Events it handles: "), ", ".join(
            f"{e} ({refused[e]})" if e in refused else e for e in d.events)))
        for event, note in d.events_withheld:  # the host's own words, one event a line
            console.print(line(host(f"  {event} {note}")))
    if d.settings:
        items = [(str(s["key"]), line(author(s.get("label", "")), host(
            f" ({s['type']}{', secret' if s['secret'] else ''})", "dim"))) for s in d.settings]
        console.print("Settings:")
        console.print(field_grid(items))
    for danger in d.dangers:
        console.print(line(host(f"DANGER {danger.code}", "bold red"),
                           f" ({danger.severity}): {danger.message}"))
    if d.app_users is not None:
        console.print(f"Users created by this app so far: {d.app_users}")
    elif d.app_users_unknown:  # the reason quotes the connection's config: shown inert
        console.print(Text(visible(f"Users created by this app so far: cannot tell "
                                   f"({d.app_users_unknown})", limit=MAX_BLOCK)))
    if d.policy_revision is None:
        console.print(host("No policy loaded: the limits above are unknown; every call "
                           "will be denied until a policy permits it.", "yellow"))
    else:
        console.print(line(host("policy revision ", "dim"), host(d.policy_revision, "dim")))


def load_policy_view(policies_dir: Path) -> tuple[PolicyView | None, str | None]:
    """The active policy from HOME/policies, or (None, why) when there is none or it is broken.

    A broken policy never degrades to allow: the gate refuses every call, and the disclosure
    says the limits are unknown."""
    if not policies_dir.is_dir() or not any(policies_dir.glob("*.toml")):
        return None, f"no policy files in {policies_dir}"
    try:
        from policies.loader import PolicyLoadError, load_policy
    except ImportError:  # the engine is optional at this layer
        return None, "the policy engine is not available"
    try:
        return load_policy(policies_dir), None
    except PolicyLoadError as exc:
        return None, f"the policy in {policies_dir} does not load: {exc}"
