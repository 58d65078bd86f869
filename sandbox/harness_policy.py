"""The operator's policy files, applied by the author harness as the host's gate applies them.

`AppHarness.use_policy(path, ...)` loads the real files with `policies.loader` (refused as a
whole, with the same findings, when `stockade policy check` would refuse them) and, for every
bridge call that passed the permission check, decides with `policies.engine.decide` — the very
function the gate calls — on the facts the gate would look up, taken from the harness's fake
server: whether a role is privileged, who created the target user, the addresses a host name
resolves to. Then it charges the decision's quotas with the exact sliding-window math of
`policies.quota` at the harness's clock (`now`) and checks the workspace seat ceiling. A refusal
raises what the app would see from the host: `PermissionDenied` naming the rule or reason (with
the engine's code in brackets), `QuotaExceeded` for a full quota or seat ceiling.

A convenience for authors, not a security boundary: the host repeats every check. A unit is
reserved before the call and given back when the server refuses it with a refundable code
(`policies.quota.REFUNDABLE_ERRORS`) while the install's refusal budget has room, as the host's
ledger does. What is not modelled: audit, the child stopped past the refusal budget, and quotas
shared with other installs.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from policies.engine import TARGET_USER_ACTIONS, decide
from policies.events import decide_event, withheld_keys
from policies.loader import PolicyLoadError, load_policy
from policies.netcheck import parse_url
from policies.policy import Policy
from policies.quota import admit, next_free_at
from policies.types import Decision, Request
from policies.vocabulary import ACTIONS, ADMIN_CLASS_ROLES, EVENTS
from sandbox import errors
from sandbox.harness_server import FakeServer, HarnessError

# The install id the harness decides for (quota keys of scope "install" carry it).
INSTALL_ID = "harness"
# What a host name resolves to when the test sets nothing: one public address (RFC 5737 ones
# are not public), so only a policy's domains decide, as for a real public host.
DEFAULT_ADDRESS = "93.184.215.14"


class PolicyCheck:
    """One loaded policy plus the quota log of one harness run."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.quota_log: dict[str, list[float]] = {}  # quota key -> admitted times, ascending
        # host name -> the addresses the gate would resolve it to (fact resolved_ips).
        self.dns: dict[str, list[str]] = {}
        self.privileged_roles: set[str] = set(ADMIN_CLASS_ROLES)

    @classmethod
    def load(cls, *paths: str | os.PathLike[str]) -> PolicyCheck:
        """Load files or folders as the host does; a refused set raises HarnessError listing
        the findings `stockade policy check` prints."""
        try:
            return cls(load_policy(*paths))
        except PolicyLoadError as exc:
            raise HarnessError(f"the host would refuse this policy: {exc}") from None

    def facts(self, server: FakeServer, app_user_id: str, action: str,
              args: Mapping[str, Any]) -> dict[str, Any]:
        """The facts the gate looks up (host/gate/gate.py `_facts`), from the fake server."""
        out: dict[str, Any] = {}
        roles: list[Any] = ([args["role"]] if action in ("roles.assign", "roles.remove") else
                            list(args.get("roles") or []) if action == "users.create" else [])
        if roles:
            out["role_privileged"] = any(str(r).casefold() in self.privileged_roles
                                         for r in roles)
        out.update(target_facts(server, app_user_id, action, args))
        if action == "http.request" and isinstance(args.get("url"), str):
            url = parse_url(args["url"])
            if not isinstance(url, str):
                out["resolved_ips"] = list(self.dns.get(url.host, [DEFAULT_ADDRESS]))
        return out

    def event_refused(self, app_id: str, grants: frozenset[str], event: str) -> str | None:
        """Why the host would keep `event` from this app under the policy (events follow the
        reads their data amounts to: `policies.events`), or None when it delivers it."""
        d = decide_event(self.policy, grants, app_id, INSTALL_ID, event)
        return None if d.allowed else f"{d.message} [{d.code}]"

    def check(self, app_id: str, grants: frozenset[str], action: str, args: Mapping[str, Any],
              facts: Mapping[str, Any], now: float, seats_in_use: Callable[[], int]
              ) -> list[str]:
        """Decide like the gate; raise what the app would see. Reserves quota units and
        returns the keys they were charged to (`refund` gives them back)."""
        d = self.decision(app_id, grants, action, args, facts, now)
        return self.charge(d, action, now, seats_in_use)

    def decision(self, app_id: str, grants: frozenset[str], action: str,
                 args: Mapping[str, Any], facts: Mapping[str, Any], now: float) -> Decision:
        """The engine's decision, charging nothing; PermissionDenied when it refuses."""
        d = decide(self.policy, grants, Request(app_id, INSTALL_ID, action, dict(args),
                                                dict(facts), now))
        if not d.allowed:
            raise errors.PermissionDenied(f"{d.message} [{d.code}]")
        return d

    def charge(self, d: Decision, action: str, now: float, seats_in_use: Callable[[], int],
               via: Decision | None = None) -> list[str]:
        """Reserve the units of `d`'s quotas (and of `via`'s, the decision of the `rest.call`
        a mapped route came through: a key both name is charged once, as the gate's admission
        does), after the seat ceiling; QuotaExceeded when one is full."""
        charges = {c.key: c for c in (*d.quotas, *(via.quotas if via is not None else ()))}
        for c in charges.values():
            log = self.quota_log.setdefault(c.key, [])
            if not admit(log, c.limit, c.window_s, now):
                free = next_free_at(log, c.limit, c.window_s, now)
                raise errors.QuotaExceeded(
                    f"quota {c.quota_id} is full: {c.limit} {action} per {c.window_s}s "
                    f"({c.scope}); next unit frees at t={free}")
        if action == "users.create" and d.seat_ceiling is not None \
                and seats_in_use() >= d.seat_ceiling:
            raise errors.QuotaExceeded(f"workspace seat ceiling reached: {d.seat_ceiling} active "
                                       "app-created users")
        for key in charges:
            self.quota_log[key].append(now)
        return list(charges)

    def refund(self, keys: list[str], now: float) -> None:
        """Give back the units a call reserved at `now` (the server refused it before
        applying anything, within the refusal budget: the host's ledger refunds these)."""
        for key in keys:
            log = self.quota_log.get(key, [])
            if now in log:
                del log[len(log) - 1 - log[::-1].index(now)]


def target_facts(server: FakeServer, app_user_id: str, action: str,
                 args: Mapping[str, Any]) -> dict[str, Any]:
    """Who the user an action names is (facts target_*), for the engine's own-users rule, as
    the gate looks it up for every such action (`policies.engine.TARGET_USER_ACTIONS`) whatever
    the policy: a user the server does not know is NotFound there, before any decision."""
    uid = args.get("user_id")
    if action not in TARGET_USER_ACTIONS or not isinstance(uid, str):
        return {}
    user = server.users.get(uid)
    if user is None:
        raise errors.NotFound(f"no user with id {uid!r}")
    own = uid == app_user_id
    facts: dict[str, Any] = {
        "target_is_own_app_user": own, "target_created_by_app": user.get("created_by_app"),
        # the engine's guardrails (`policies.engine.USER_CHANGE_ACTIONS`), as the fake server
        # tells another app's own user (`FakeServer.changeable`) and a privileged one
        "target_is_another_apps_user": not own and (user.get("app_id") is not None
                                                    or user.get("type") == "app")}
    if action == "users.deactivate":
        facts["target_holds_privileged_role"] = bool(set(user.get("roles") or ())
                                                     & ADMIN_CLASS_ROLES)
    return facts


def seats_in_use(server: FakeServer) -> int:
    """Active app-created users on the fake server (the seat ceiling counts these)."""
    return sum(1 for u in server.users.values() if u.get("active") and u.get("created_by_app"))


def withheld(check: PolicyCheck | None, app_id: str, grants: frozenset[str],
             event: str) -> frozenset[str]:
    """The payload keys of `event` the host would send this app as None (`EventSpec.withheld`:
    a message's room): by the loaded policy, or without one by the grants alone."""
    if check is not None:
        return withheld_keys(check.policy, grants, app_id, INSTALL_ID, event)
    spec = EVENTS.get(event)
    return frozenset(k for k, action in (spec.withheld if spec else ())
                     if ACTIONS[action].permission not in grants)
