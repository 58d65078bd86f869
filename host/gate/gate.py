"""The gate: the one place every bridge call crosses before it reaches the server.

Order (each step refuses with an error the app sees, and every refusal is audited):

1. identity: the `Session` is the channel's, built by the host when it started the child;
   nothing in the call can name another app, install or user (DESIGN rule 1);
2. token: verified once per session at handshake; here the cached claims are checked against
   the install record (enabled, generation, global epoch) on every call: the record is cached,
   and the admission's own transaction checks it is still current (`Gate.handle`);
3. permission: the action's permission must be in the token's claims and in the current grant;
4. policy: the pure engine decides with facts the gate looked up (target user's creator,
   whether a role is privileged, the resolved addresses of an HTTP host);
5. quota and audit: one durable transaction reserves the units and appends the decision
   (audit before act, DESIGN rule 9); a full window is `QuotaExceeded`;
6. the server call, then its outcome record (refund only for errors that applied nothing).
"""
from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from host.apps.installs import InstallRecord, InstallStore
from host.bridges.ownaddrs import MACHINE
from host.clock import Clock
from host.errors import GateError, RefusalBudgetExceeded, ServerRefused
from host.gate import httpquota, readrefusal
from host.gate.actor import acting_user
from host.gate.installview import InstallView
from host.gate.onecommit import FALL_BACK, SeatCheck, allow_record, in_one_transaction
from host.gate.onetx import LENT_ACTIONS, server_calls
from host.gate.restbridge import rest_call
from host.keys.tokens import Claims
from host.ledger.audit import AuditRecord, digest_args
from host.ledger.ledger import REFUNDABLE_ERRORS, Admission, Ledger, Stale
from host.ledger.quota import Charge
from host.ledger.refusals import refusal_budget
from host.server.adapter import ACTION_METHODS, ServerAdapter
from host.server.errors import ServerError, Unavailable
from host.server.principals import Caller
from host.server.rest_errors import rc_status
from host.store import Conn
from host.store.diskfull import store_trouble
from policies.engine import TARGET_USER_ACTIONS, decide, lists_endpoint
from policies.grants import grant_refusal as policies_grant_refusal
from policies.policy import Policy
from policies.types import Decision, Request
from policies.vocabulary import ACTIONS, ActionSpec

# `Gate.handle`: a call decided on an install record that changed before its admission is
# decided again on the current one, at most this many times in all; then it is refused. Only
# an operator's change (install, consent, enable, epoch) moves the record, so a second decision
# nearly always stands; the bound keeps a script changing it in a loop from pinning a thread.
MAX_DECISIONS = 8

# A host-served action: (session, args, op_id, facts the policy decided with) -> result.
HostAction = Callable[["Session", dict[str, Any], str | None, Mapping[str, Any]], Any]

log = logging.getLogger("stockade.gate")


class _Stale(Exception):
    """A decision made on the cached install record would refuse, or a read's record moved:
    nothing was recorded; decide again on the current record."""


class Decided(NamedTuple):
    """What `Gate._decide` found: the call may go on to its admission."""

    spec: ActionSpec
    decision: Decision
    policy: Policy
    facts: dict[str, Any]
    version: int  # the install change counter the decision was made under


@dataclass
class Session:
    """One child's identity, fixed by the host when it started that child."""

    app_id: str
    install_id: str
    session_id: str
    claims: Claims
    caller: Caller
    grants: frozenset[str] = field(default_factory=frozenset)
    revoked: str = ""  # set when the install was disabled/changed under this session


def grant_refusal(app_id: str, perms: Collection[str], install: InstallRecord,
                  spec: ActionSpec, args: Mapping[str, Any]) -> str:
    """Step 3 (a `permission_denied` message, or "" when it passes): the permission in the
    token's claims `perms` and the current grant, then the roles the manifest declared. Pure
    (`policies.grants`, shared with the app-author harness); `stockade can-i` asks it too, so
    it answers as the gate does."""
    return policies_grant_refusal(app_id, perms, install.grants,
                                  install.manifest.declared_roles, spec, args)


class PolicySource:
    """Holds the active policy; swapped whole on reload so a decision sees one revision."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def current(self) -> Policy:
        return self.policy


# A host-served call on the ledger's own store (persistence), run inside the ledger's
# transaction: a write, or a read under a quota.
StoreCall = Callable[[Conn, "Session", dict[str, Any]], Any]


def args_digest(args: Mapping[str, Any]) -> str:
    """Digest of the canonical arguments: the audit log proves what was asked, never holds it."""
    return digest_args(args)


# A call's host-name lookups (`Gate._lookup`): name -> its addresses, or the lookup's error.
Lookups = dict[str, list[str] | ServerError]


class Gate:
    def __init__(
        self,
        *,
        server: ServerAdapter,
        ledger: Ledger,
        installs: InstallStore,
        policy: PolicySource,
        clock: Clock,
        host_actions: Mapping[str, HostAction] | None = None,
        store_calls: Mapping[str, StoreCall] | None = None,
        audit_reads: bool = True,
        resolve: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.server = server
        self.ledger = ledger
        self.installs = InstallView(installs, probe=ledger.store.conn)
        self.policy = policy
        self.clock = clock
        self.host_actions = dict(host_actions or {})
        # Host-served calls on the ledger's own store (persistence): one transaction each.
        self.store_calls = dict(store_calls or {})
        # The embedded server's writes in the same transaction, when it shares the ledger's file.
        self.server_calls = server_calls(server, ledger.store)
        self.audit_reads = audit_reads
        self.resolve = resolve
        # `ServerAdapter.op_log_exact`; an adapter that does not say is taken as inexact.
        self._op_log_exact = getattr(server, "op_log_exact", False) is True
        self.stats = {"allowed": 0, "denied": 0}
        self._stats_lock = threading.Lock()

    # ---- the call path -----------------------------------------------------------------------

    def handle(self, session: Session, action: str, args: dict[str, Any]) -> Any:
        """Decide, reserve, audit and perform one bridge call; raise GateError on refusal.

        The first decision is made on the cached install record (`InstallView.peek`), its
        admission checking in its own transaction that no install change committed since
        (`Ledger.admit(holds=...)`); a refusal, or a change found there, decides again on the
        current record. So a disable, a grant or an epoch change committed before a call's
        admission always refuses that call."""
        optimistic = True
        # This call's host-name lookups, kept across its decisions only (`_facts`).
        lookups: Lookups = {}
        for _ in range(MAX_DECISIONS):
            try:
                if action == "rest.call":
                    # A REST route is the bridge action it amounts to (DESIGN rule 11):
                    # restbridge.py decides it through this gate's own steps below.
                    return rest_call(self, session, args)
                spec, decision, policy, facts, version = self._decide(
                    session, action, args, optimistic=optimistic, lookups=lookups)
                return self._admit_and_call(session, spec, args, decision, policy, facts,
                                            version=version)
            except (Stale, _Stale):
                optimistic = False
        raise self._refuse(session, action, args, "internal",
                           f"{action}: the app's install changed {MAX_DECISIONS} times while "
                           "this call was decided; nothing was done, try again")

    def check_redirect(self, session: Session, args: dict[str, Any], number: int,
                       call_op: str | None) -> httpquota.Hop:
        """Decide and admit HTTP redirect hop `number` (2 and on) of the call `call_op` as a
        new request, charged its own units before it is sent (`httpquota.admit_hop`); its
        addresses are the hop's `ips`. `end_redirect` records how it ended."""
        return httpquota.admit_hop(self, session, args, number, call_op, MAX_DECISIONS)

    def end_redirect(self, hop: httpquota.Hop, sent: bool, error: BaseException | None) -> None:
        httpquota.end_hop(self.ledger, hop, sent, error)

    def _decide(self, session: Session, action: str, args: dict[str, Any],
                route: str | None = None, extra_facts: Mapping[str, Any] | None = None, *,
                optimistic: bool = False, lookups: Lookups | None = None) -> Decided:
        """Every step before admission; `route` (a REST bridge call's) goes on refusals.

        `optimistic`: decide on the cached install record without asking whether the store
        changed; the caller's admission checks the returned version. A refusal then raises
        `_Stale` instead (nothing recorded): it is decided again on the current record.
        `lookups`: the host-name lookups this same call already made (`_facts`)."""
        spec = ACTIONS.get(action)
        if spec is None:
            raise self._refuse(session, action, args, "invalid_argument",
                               f"unknown bridge action {action[:64]!r}", route=route)
        seen = self.installs.peek(session.install_id) if optimistic else None
        if seen is None:
            optimistic = False
            seen = self.installs.get(session.install_id)
        install, epoch, version = seen

        def refuse(code: str, message: str, decision: Decision | None = None,
                   policy: Policy | None = None, audit_code: str | None = None) -> Exception:
            if optimistic:
                return _Stale()
            return self._refuse(session, action, args, code, message, decision, policy,
                                route=route, audit_code=audit_code)

        problem = self._install_problem(session, install, epoch)
        if problem:
            if not optimistic:
                session.revoked = problem
            raise refuse("permission_denied", problem)
        assert install is not None
        problem = grant_refusal(session.app_id, session.claims.perms, install, spec, args)
        if problem:
            raise refuse("permission_denied", problem)
        policy = self.policy.current()
        try:
            facts = self._facts(session, spec, args, policy, lookups)
        except ServerError as exc:
            raise refuse(exc.code, exc.message) from None
        except httpquota.QuotaFull as full:
            if optimistic:
                raise _Stale() from None
            self._count(False)
            raise httpquota.quota_refusal(self.ledger, session, args, full.state,
                                          policy) from None
        facts.update(extra_facts or {})
        decision = decide(policy, install.grants, Request(
            app_id=session.app_id, install_id=session.install_id, action=action, args=args,
            facts=facts, now=self.clock.now()))
        if not decision.allowed:
            # The app sees permission_denied; the record keeps the policy's own code
            # (policy_denied, guardrail...), the one `stockade policy explain` prints.
            raise refuse("permission_denied", f"{decision.message} [{decision.code}]",
                         decision, policy, audit_code=decision.code)
        return Decided(spec, decision, policy, facts, version)

    def _admit_and_call(self, session: Session, spec: ActionSpec, args: dict[str, Any],
                        decision: Decision, policy: Policy, facts: Mapping[str, Any], *,
                        version: int, route: str | None = None,
                        via: Decision | None = None) -> Any:
        """Admit (quota units, seat, durable decision), perform, record the outcome.

        `version` is the install change counter the decision was made under: an admission
        checks it in its own transaction, a call without one asks the store before it is
        served; moved, `Stale` or `_Stale` is raised with nothing done (`handle` decides again).

        `route` and `via` come from the REST bridge: the route the app called and the decision
        on `rest.call` itself, whose rules and quotas join the action's (a quota key both name
        is charged once). The server's refusal is then raised as `ServerRefused` with its HTTP
        status, which the outcome record holds too."""
        action = spec.name
        write = spec.write
        charges = decision.quotas
        rules = decision.rules
        if via is not None:
            keyed = {c.key: c for c in (*decision.quotas, *via.quotas)}
            charges = tuple(sorted(keyed.values(), key=lambda c: (c.key, c.quota_id)))
            rules = tuple(sorted(set(decision.rules) | set(via.rules)))
        op_id = "op_" + secrets.token_hex(12) if write or charges or route else None
        installs = self.installs

        def holds(c: Conn) -> bool:
            # The install record and the policy the call was decided on are still current: a
            # reload swapped in since (a quota lowered, a forbid added; its record written
            # first, under the ledger's commit lock: `PolicyWatch`) is decided again.
            return (installs.version_in(c) == version
                    and self.policy.current().revision == policy.revision)
        fused = self.store_calls.get(action) if route is None else None
        lent = self.server_calls if write and route is None and action in LENT_ACTIONS else None
        seats: SeatCheck | None = None
        if lent is not None and op_id:
            # The embedded server shares the ledger's file: its write joins the admission.
            fused = partial(lent.call, action, op_id)
            if decision.seat_ceiling is not None and action == "users.create":
                seats = (decision.seat_ceiling, lent.seats_in)
        if fused is not None and op_id and (decision.seat_ceiling is None or lent is not None):
            done = in_one_transaction(
                self, session, spec, args, rules, policy, charges, op_id, fused, holds, seats)
            if done is not FALL_BACK:
                return done
        seq: int | None = None
        effects = write or charges or decision.seat_ceiling is not None or route
        admitted = bool(effects) or (self.audit_reads and not self.ledger.holds_reads)
        if not admitted and (installs.get(session.install_id)[2] != version
                             or self.policy.current().revision != policy.revision):
            raise _Stale()  # no admission to check it in: asked here, as before deciding
        if not effects and self.audit_reads and self.ledger.holds_reads:
            # A read: its allow record waits for the group commit (DESIGN rule 9), built from
            # the read's template (the same body `admit` would hold, for a fraction of the cost).
            self.ledger.hold_read(session.app_id, session.install_id, action, rules,
                                  policy.revision, args_digest(args))
        elif effects or self.audit_reads:
            try:
                admission = self.ledger.admit(
                    allow_record(session, action, args, rules, policy, op_id, write, route),
                    charges, decision.seat_ceiling if action == "users.create" else None,
                    self.server.seats_in_use, refusal_budget(session.install_id), holds)
            except ValueError as exc:
                raise self.unadmitted(session, action, args, exc, decision, policy, route) from None
            if not admission.allowed:
                raise self._over_quota(admission)
            seq = admission.seq
        try:
            result = self._dispatch(session, spec, args, op_id, facts)
        except ServerError as exc:
            if seq is not None and op_id is not None and isinstance(exc, Unavailable) \
                    and exc.outcome_unknown:
                # A remote write sent with no answer: ask the server, never refund blindly.
                self._settle_unknown(spec, seq, op_id, exc, exc.code)
            elif seq is not None and op_id is not None:
                refund = exc.code in REFUNDABLE_ERRORS or (
                    isinstance(exc, Unavailable) and exc.nothing_applied)
                status = rc_status(exc.code)
                if self._outcome_may_wait(spec):
                    # Its refund commits with it, before any later admission on this host.
                    self.ledger.hold_refusal(seq, op_id, exc.code, refund,
                                             status=status if route else None, route=route)
                else:
                    self.ledger.outcome(seq, op_id, False, exc.code, refund=refund,
                                        status=status if route else None, route=route)
            elif op_id is None:  # an unrated read: no outcome record to say it was refused
                self._read_refused(session, action, args, exc.code, exc.message, decision, policy)
            self._count(False)
            raise ServerRefused(exc.code, exc.message, rc_status(exc.code)) from None
        except GateError as exc:
            if seq is not None and op_id is not None:
                self.ledger.outcome(seq, op_id, False, exc.code,
                                    refund=exc.code in REFUNDABLE_ERRORS and not exc.sent,
                                    route=route)
            elif op_id is None:
                self._read_refused(session, action, args, exc.code, str(exc), decision, policy)
            self._count(False)
            raise
        except ValueError as exc:
            # host-served actions (persistence) refuse bad input before writing anything
            if seq is not None and op_id is not None:
                self.ledger.outcome(seq, op_id, False, "invalid_argument", refund=True)
            elif op_id is None:
                self._read_refused(session, action, args, "invalid_argument", str(exc),
                                   decision, policy)
            self._count(False)
            raise GateError("invalid_argument", str(exc)[:500]) from None
        except Exception as exc:
            if seq is not None and op_id is not None:
                self._settle_unknown(spec, seq, op_id, exc)
            self._count(False)
            raise GateError("internal", f"{action} failed inside the host"
                            f"{store_trouble(exc)}") from exc
        if seq is not None and op_id is not None:
            # No seat is "released" here: seats are counted from the server's users at the next
            # creation, so a repeated or foreign deactivation frees nothing it did not hold.
            if self._outcome_may_wait(spec):
                # Its units and decision are durable; the success keeps the units, so its
                # record may wait for the group commit (`_outcome_may_wait`).
                self.ledger.hold_outcome(seq, op_id, session.app_id, session.install_id,
                                         action, status=200 if route else None, route=route)
            else:
                self.ledger.outcome(seq, op_id, True, None, refund=False,
                                    status=200 if route else None, route=route)
        self._count(True)
        return result

    def _outcome_may_wait(self, spec: ActionSpec) -> bool:
        """Whether an admitted call's success, or the server's refusal of it, may be recorded by
        the group commit instead of a commit of its own (`Ledger.hold_outcome`,
        `Ledger.hold_refusal`, whose refund commits with its record before any later admission
        on this host). Its decision and units are durable already (DESIGN rule 9); the intent
        stays until the outcome commits, so a crash in between is settled at the next start
        from what the server knows (`Ledger.settle`): a read keeps its units (`outcome_unknown`:
        it may have been served; a refused read's unit is then kept, stricter than its refund);
        a server write is `was_applied` by its op_id, which is exact when the server says so
        (`ServerAdapter.op_log_exact`: the embedded server records every write's op_id in the
        write's own transaction); a write the host serves itself (`http.request`, `rest.call`,
        persistence) keeps no op log, so it keeps its units as `outcome_unknown`, as a crash
        during the request itself leaves it: waiting widens that window by one group commit.
        A creation under a seat ceiling too: an intent whose op_id the server holds is no seat
        of its own (`users.seats_in_use`), so its seat is counted once, on every host."""
        if not self.ledger.holds_reads:
            return False
        if not spec.write or spec.name in self.host_actions:
            return True
        return self._op_log_exact and spec.name in ACTION_METHODS

    def unadmitted(self, session: Session, action: str, args: Mapping[str, Any],
                   exc: ValueError, decision: Decision | None, policy: Policy,
                   route: str | None) -> GateError:
        """A call whose admission refused its charges (a quota or seat ceiling past the store's
        bounds, from a policy the loader did not check; nothing was written): audited and
        charged to the refusal budget as every refusal is (DESIGN rules 3 and 13)."""
        return self._refuse(session, action, args, "permission_denied",
                            f"{action}: the host cannot enforce this call's quota or seat "
                            f"ceiling ({exc}); refused until the policy is fixed", decision,
                            policy, route=route, audit_code="quota_invalid")

    def _over_quota(self, admission: Admission) -> GateError:
        """The error for a call the ledger refused on a full quota (counted as denied)."""
        self._count(False)
        error = RefusalBudgetExceeded if admission.over_budget else GateError
        return error("quota_exceeded", admission.message or "quota exceeded")

    def _settle_unknown(self, spec: ActionSpec, seq: int, op_id: str, exc: Exception,
                        code: str = "internal") -> None:
        """A call failed with an error that does not say whether the server applied it (a full
        disk, an I/O error, a bug). Ask the server, which records every applied write's op_id
        in the write's own transaction: not applied gives the units and the seat back now;
        applied keeps them. When even that cannot be answered — or the outcome record cannot
        be written — the intent stays pending and the host's upkeep asks again each round
        (`host.ledger.unsettled`); it is never closed with its units unaccounted for."""
        if spec.name in self.host_actions:
            # Host-served actions keep no op log: keep the units (the write may have happened).
            self.ledger.outcome(seq, op_id, False, "internal", refund=False)
            return
        try:
            applied = bool(self.server.was_applied(op_id))
            self.ledger.outcome(seq, op_id, False, code, refund=not applied)
        except Exception:
            log.warning("%s: outcome unknown after %s; asked again by the upkeep", op_id,
                        type(exc).__name__, exc_info=True)
            self.ledger.unsettled.note(op_id)  # its units held until the server can say

    def _dispatch(self, session: Session, spec: ActionSpec, args: dict[str, Any],
                  op_id: str | None, facts: Mapping[str, Any]) -> Any:
        host_action = self.host_actions.get(spec.name)
        if host_action is not None:
            return host_action(session, args, op_id, facts)
        method_name = ACTION_METHODS.get(spec.name)
        if method_name is None:
            raise GateError("internal", f"{spec.name} is not served by this host")
        method = getattr(self.server, method_name)
        if spec.write:
            return method(session.caller, **args, op_id=op_id)
        return method(session.caller, **args)

    # ---- helpers -----------------------------------------------------------------------------

    def _install_problem(self, session: Session, install: InstallRecord | None,
                         epoch: int) -> str:
        if install is None:
            return f"app {session.app_id!r} is no longer installed"
        if not install.enabled:
            return f"app {session.app_id!r} is disabled"
        if install.generation != session.claims.gen:
            return f"app {session.app_id!r} changed (generation {install.generation}); " \
                   "this session's token is revoked"
        if epoch != session.claims.epoch:
            return "every app token was revoked (epoch bumped)"
        if self.clock.now() >= session.claims.exp:
            return "this session's token expired; the app restarts with a fresh one"
        return ""

    def _facts(self, session: Session, spec: ActionSpec, args: Mapping[str, Any],
               policy: Policy, lookups: Lookups | None = None) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        action = spec.name
        roles: list[str] = []
        if action in ("roles.assign", "roles.remove"):
            roles = [args["role"]] if isinstance(args.get("role"), str) else []
        elif action == "users.create" and isinstance(args.get("roles"), list):
            roles = [r for r in args["roles"] if isinstance(r, str)]
        if roles:
            facts["role_privileged"] = any(self.server.is_privileged(r) for r in roles)
        # The engine's own-users rule needs to know who created the user an action names, its
        # guardrails whether that is another app's own user or (a deactivation's) a privileged
        # one: one read of the user, its roles only for a deactivation.
        if action in TARGET_USER_ACTIONS and isinstance(args.get("user_id"), str):
            uid = args["user_id"]
            own = uid == session.caller.app_user_id
            deactivation = action == "users.deactivate"
            standing = self.server.user_standing(uid, privileged=deactivation)
            facts["target_is_own_app_user"] = own
            facts["target_created_by_app"] = standing.created_by_app
            facts["target_is_another_apps_user"] = standing.own_user_of is not None and not own
            if deactivation:
                # not said (None) is taken as privileged: fail closed
                facts["target_holds_privileged_role"] = standing.privileged is not False
        if action == "http.request" and self.resolve is not None:
            from policies.netcheck import parse_url

            url = parse_url(args.get("url", "")) if isinstance(args.get("url"), str) else None
            if url is not None and not isinstance(url, str):
                # Only a name a permit lists is looked up (`lists_endpoint`: a DNS query is an
                # effect outside the host, before the decision); another is refused on its domain.
                # And only while the call's quotas have a unit free (`httpquota`).
                ips: list[str] = []
                if lists_endpoint(policy, session.app_id, url):
                    full = httpquota.full_quota(self.ledger, policy.charges(
                        session.app_id, session.install_id, action))
                    if full is not None:
                        raise httpquota.QuotaFull(full)
                    ips = self._lookup(url.host, lookups)
                facts["resolved_ips"] = ips
                # the machine's own addresses among them: no public service (`ownaddrs.py`)
                facts["own_ips"] = MACHINE.among(
                    [*ips, str(url.ip)] if url.ip is not None else ips)
        return facts

    def _lookup(self, host: str, lookups: Lookups | None) -> list[str]:
        """`host`'s addresses, or the lookup's error, as this call's first decision got them.

        A refusal on the cached install record is decided again on the current one (`handle`):
        a second lookup was a second DNS query per refused call (a timeout waited twice). Kept
        for one call only (`lookups` is the call's own): DNS answers change, and each call is
        decided on the addresses it would connect to (`resolved_ips`, which the send uses)."""
        assert self.resolve is not None
        if lookups is None:
            return self.resolve(host)
        if host not in lookups:
            try:
                lookups[host] = self.resolve(host)
            except ServerError as exc:
                lookups[host] = exc
        found = lookups[host]
        if isinstance(found, ServerError):
            raise found
        return list(found)

    def _refuse(self, session: Session, action: str, args: Mapping[str, Any], code: str,
                message: str, decision: Decision | None = None,
                policy: Policy | None = None, *, route: str | None = None,
                audit_code: str | None = None) -> GateError:
        """Audit the refusal (durably, within the install's refusal budget), then build the
        error the app will see (`code`; the record holds `audit_code` when given)."""
        _seq, over = self.ledger.deny_within(AuditRecord(
            kind="decision", allowed=False, code=audit_code or code, message=message[:500],
            rules=decision.rules if decision else (),
            policy_rev=policy.revision if policy else None, app_id=session.app_id,
            install_id=session.install_id, action=action[:64],
            args_digest=args_digest(args), route=route, actor=acting_user(action, args),
        ), refusal_budget(session.install_id))
        self._count(False)
        return (RefusalBudgetExceeded if over else GateError)(code, message)

    def _read_refused(self, session: Session, action: str, args: Mapping[str, Any], code: str,
                      message: str, decision: Decision, policy: Policy) -> None:
        """Audit an unrated read's refusal (`host.gate.readrefusal`), charged to the refusal
        budget. Past it the app goes on, as past it a rated read's refusal does (its units
        kept): a missing key or room is an answer an app may meet any number of times (a
        cache's misses), and the budget's work here is the audit's size, which its one summary
        record a window bounds. Stopping the child stopped ordinary apps under a policy with
        no call-rate quota."""
        if self.audit_reads:
            readrefusal.record(self.ledger, session, action, args, code, message, decision,
                               policy)

    def _refusal_budget(self, install_id: str) -> Charge:
        """The install's refusal budget charge (for the REST bridge, which cannot import this
        module back)."""
        return refusal_budget(install_id)

    def _count(self, allowed: bool) -> None:
        with self._stats_lock:
            self.stats["allowed" if allowed else "denied"] += 1
