"""`RemoteCore`: what every remote action shares — the client, Stockade's own record of the
workspace (`Owned`), the event bus, user tokens, and `_write`, rule 9 across the network.

`_write(op_id, action, probe, send)`: the gate has already made its decision durable (audit
before act); `_write` then records the remote write as `pending` in `host.db` **before** the
request leaves, sends it, and records `applied` or `failed` after. A host killed in between
leaves `pending`; at the next start `was_applied(op_id)` reads the workspace back through the
action's probe (does the username exist now? does the user hold the role? is the room closed?)
and the host settles quota, seats and audit from that answer.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from host.clock import Clock
from host.server import impersonation
from host.server.errors import Forbidden, NotFound, ServerError, Unavailable
from host.server.events import EventBus, PreSendHook, Subscriber
from host.server.principals import Caller, Principal
from host.server.remote import convert
from host.server.remote.client import RcClient, RouteMissing, Unauthorized
from host.server.remote.owned import Owned
from host.server.remote.rolepower import RolePowers
from host.server.remote.sentcauses import SentCauses
from host.server.shapes import User
from host.store import StoreTarget

log = logging.getLogger("stockade.remote")

# How often the host's upkeep reads app-created users back from the workspace (s), and how many
# a pass reads (one users.info each). Guards the workspace's rate limiter and the upkeep
# thread's time; a seat freed by hand on the workspace counts again within a few passes.
SEAT_SYNC_INTERVAL_S = 60.0
SEAT_SYNC_BATCH = 100
# The most one pass of the seat read-back spends (s); the rest of its batch waits for the next
# pass. Guards the upkeep thread, which also beats the host's lease on a shared store (every
# `SWEEP_INTERVAL_S`, 5 s; admitting stops 10 s after the last beat, other hosts settle this
# one's calls after 20 s): a batch of 100 reads at 0.2 s each, or a workspace answering each
# just inside the call deadline, held it for 20 s to 7 minutes.
SEAT_SYNC_BUDGET_S = 2.0
# How long a stopping host spends logging out the sign-ins it minted (s). Guards the stop (and
# Ctrl-C) against a workspace that does not answer; what is left expires on the workspace.
SIGN_OUT_BUDGET_S = 5.0

T = TypeVar("T")

# Roles that are admin-class on a Rocket.Chat workspace: apps never grant or take them (DESIGN
# rule 10). Rocket.Chat's own `protected` flag marks built-in roles (`user` and `bot` too), so
# it cannot say this; a custom role holding a power in the workspace's permission table counts too
# (`rolepower.py`), and an operator may name more in the config file (`privileged_roles`).
ADMIN_CLASS_ROLES = frozenset({
    "admin", "owner", "moderator", "leader", "livechat-manager", "livechat-monitor",
    "user-admin", "app",
})


class ReadBackFailed(Unavailable):
    """The workspace acknowledged a write, and the read that shows its result failed: the write
    applied (`_write` records it so), the caller's answer is unknown to it. Before, the read's
    own error (a 503, NotFound) passed for the write's: the op was recorded `failed`, a role the
    workspace granted read back as never granted, a NotFound refunded the units."""

    def __init__(self, action: str, exc: ServerError) -> None:
        super().__init__(f"{action} was applied; reading its result back failed: {exc.message}",
                         outcome_unknown=True)


class RemoteCore:
    """State and helpers shared by the remote actions (see the module docstring)."""

    def __init__(self, client: RcClient, host_db: StoreTarget, clock: Clock, *,
                 privileged_roles: frozenset[str] = frozenset(),
                 create_tokens_secret: str = "") -> None:
        self.client = client
        # users.createToken's `secret` (the workspace's CREATE_TOKENS_FOR_USERS_SECRET, required
        # since Rocket.Chat 8.0): from HOME/rocketchat.secret, sent in that call's body only,
        # never logged, never in an error message.
        self._create_tokens_secret = create_tokens_secret
        self.owned = Owned(host_db)
        self.clock = clock
        self.bus = EventBus()
        # The causes of messages apps sent while handling events, until their webhooks come
        # back (`sentcauses`): the host's depth limit then applies through the workspace.
        self.sent = SentCauses()
        self.privileged = ADMIN_CLASS_ROLES | privileged_roles
        # Roles the workspace's own permission table shows carrying power (rolepower.py).
        self.role_powers = RolePowers(lambda: self.get("permissions.listAll"),
                                      lambda: self.get("roles.list"))
        self._hook: PreSendHook | None = None
        # Sign-ins the host minted (users.createToken) to act as an app's user or a user an
        # app created (a message's sender must be that user). Kept in memory only, never on
        # disk and never in a frame to an app.
        self._user_tokens: dict[str, dict[str, str]] = {}
        self._tokens_lock = threading.Lock()
        self._next_seat_sync = 0.0  # the first upkeep pass reads seats back
        self._seat_cursor = ""

    def close(self) -> None:
        self.sign_out_users()
        self.client.close()
        self.owned.close()

    def sign_out_users(self) -> int:
        """Log out every sign-in this process minted (`as_user`), so host restarts do not pile
        login tokens up on the workspace's users; returns how many the workspace revoked. One
        short try each (a workspace that does not answer keeps them until its own login
        expiry, Rocket.Chat's `Accounts_LoginExpiration`, 90 days by default)."""
        with self._tokens_lock:
            minted, self._user_tokens = list(self._user_tokens.values()), {}
        revoked = 0
        give_up = time.monotonic() + SIGN_OUT_BUDGET_S
        for headers in minted:
            if time.monotonic() > give_up:
                log.info("%d minted sign-ins left to expire on the workspace (stop budget "
                         "spent)", len(minted) - revoked)
                break
            try:
                self.client.call("POST", "logout", body={}, idempotent=False, auth=headers)
                revoked += 1
            except Exception:  # noqa: BLE001 - best effort at stop; never blocks the stop
                log.info("could not log out a minted sign-in of user %s at stop",
                         headers.get("X-User-Id"))
        return revoked

    # -- events and the pre-send hook ------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Receive `(event_name, payload)` for each event the webhook receiver derives."""
        return self.bus.subscribe(callback)

    def set_pre_send_hook(self, hook: PreSendHook | None) -> None:
        """The host's pre-send hook. It runs for the messages apps send through this adapter;
        messages written on the workspace itself pass no hook (Rocket.Chat's REST and webhooks
        offer no pre-send point: see docs/ROCKETCHAT.md)."""
        self._hook = hook

    def checkpoint(self) -> None:
        """The host's upkeep (its store is host.db, checkpointed with the ledger's): every
        `SEAT_SYNC_INTERVAL_S`, a batch of the seat read-back (`sync_seats`)."""
        now = time.monotonic()
        if now < self._next_seat_sync:
            return
        self._next_seat_sync = now + SEAT_SYNC_INTERVAL_S
        try:
            self.sync_seats()
        except ServerError as exc:  # the workspace is down: the next pass tries again
            log.info("seat read-back skipped: %s", exc.message)

    def sync_seats(self, batch: int = SEAT_SYNC_BATCH) -> int:
        """Read the next `batch` app-created users back from the workspace and record their
        active flag as the workspace has it: a user an operator deactivated (or deleted) by
        hand on the workspace no longer holds a seat, one reactivated there holds one again
        (Rocket.Chat bills active users). Walks all of them over successive passes; returns
        how many flags changed."""
        users = self.owned.created_after(self._seat_cursor, batch)
        changed = 0
        give_up = time.monotonic() + SEAT_SYNC_BUDGET_S
        for i, (uid, recorded) in enumerate(users):
            if i and time.monotonic() > give_up:
                # Out of time: the next pass goes on after the last user read here.
                self._seat_cursor = users[i - 1][0]
                break
            try:
                doc = self.get("users.info", userId=uid).get("user")
            except RouteMissing:
                # A 404 says nothing of the user: the pass stops, the batch is read again.
                raise Unavailable("users.info answered 404: seats not read back now") from None
            except NotFound:
                active = False  # "User not found": deleted on the workspace, no seat
            else:
                if not isinstance(doc, dict):
                    continue  # an answer that names no user says nothing of this one
                active = convert.active(doc)  # free only on the workspace's `active: false`
            if active != recorded:
                self.owned.set_active(uid, active)
                changed += 1
        else:
            # Only once the whole batch was read: a workspace that stops answering part-way
            # (the caller skips the pass) has the same batch read again, not skipped.
            self._seat_cursor = users[-1][0] if len(users) == batch else ""
        if changed:
            log.info("seat read-back: %d app-created user(s) changed on the workspace", changed)
        return changed

    # -- REST helpers -----------------------------------------------------------------------------
    def get(self, route: str, **query: str) -> dict[str, Any]:
        return self.client.call("GET", route, query=query, idempotent=True)

    def post(self, route: str, body: dict[str, Any], *, idempotent: bool,
             auth: dict[str, str] | None = None) -> dict[str, Any]:
        return self.client.call("POST", route, body=body, idempotent=idempotent, auth=auth)

    def user_doc(self, *, user_id: str | None = None, username: str | None = None
                 ) -> dict[str, Any]:
        query = {"userId": user_id} if user_id else {"username": username or ""}
        doc = self.get("users.info", **query).get("user")
        if not isinstance(doc, dict):
            raise NotFound(f"no user {user_id or username!r}")
        return doc

    def to_user(self, doc: dict[str, Any]) -> User:
        uid = str(doc["_id"])
        return convert.user(doc, created_by_app=self.owned.created_by(uid),
                            app_id=self.owned.app_of_user(uid))

    def as_user(self, user_id: str) -> dict[str, str]:
        """Headers that act as `user_id` (a token minted once per process, by the service
        account's `users.createToken`)."""
        with self._tokens_lock:
            known = self._user_tokens.get(user_id)
        if known is not None:
            return known
        body = {"userId": user_id}
        if self._create_tokens_secret:
            body["secret"] = self._create_tokens_secret
        try:
            data = self.post("users.createToken", body, idempotent=True).get("data")
        except Unauthorized:
            raise  # the service account's own token refused: not this call's secret
        except Forbidden as exc:
            raise Forbidden(
                f"{exc.message} — users.createToken was refused: on Rocket.Chat 8+ store the "
                "workspace's CREATE_TOKENS_FOR_USERS_SECRET (second stdin line of `stockade "
                "rocketchat connect`); the service account needs user-generate-access-token"
            ) from None
        if not isinstance(data, dict) or not data.get("authToken"):
            raise Forbidden("Rocket.Chat minted no token to act as the app's user "
                            "(the service account needs user-generate-access-token)")
        headers = {"X-User-Id": user_id, "X-Auth-Token": str(data["authToken"])}
        with self._tokens_lock:
            self._user_tokens[user_id] = headers
        return headers

    def forget_user(self, user_id: str) -> None:
        """Drop a minted sign-in the workspace no longer honours (a deactivation deletes a
        user's tokens); the next `as_user` mints a new one."""
        with self._tokens_lock:
            self._user_tokens.pop(user_id, None)

    def role_privileged(self, role: str) -> bool:
        """Whether `role` is admin-class here: on the fixed list, on the operator's, or holding
        a power in the workspace's permission table (Unavailable when that cannot be read)."""
        if role in self.privileged:
            return True
        # By every name the workspace knows it by: a custom role's `_id` (random since
        # Rocket.Chat 6, and what the permission table names) and its name (what an app asks
        # for); the operator's list may name either.
        names = self.role_powers.names_of(role)
        return not names.isdisjoint(self.privileged) or self.role_powers.any_powerful(names)

    def refuse_privileged(self, caller: Principal, roles: list[str]) -> None:
        # DESIGN rule 10 also here, behind the gate: an app never touches admin-class roles.
        if isinstance(caller, Caller):
            for r in roles:
                if self.role_privileged(r):
                    raise Forbidden(f"apps may not grant or remove the privileged role {r!r}")

    def refuse_impersonation(self, caller: Principal, user_id: str, doc: dict[str, Any],
                             role: str) -> None:
        """An app's grant of `role`, one that changes whose name a message shows (by the
        workspace's permission table), to a person it did not create (`users.info`'s `doc`):
        Forbidden (`host.server.impersonation`). A user holding such a role already gains no
        power from it."""
        if not isinstance(caller, Caller) or not self.role_powers.impersonating(role):
            return
        if any(self.role_powers.impersonating(r) for r in convert.str_list(doc.get("roles"))):
            return
        impersonation.refuse_to_person("bot" if doc.get("type") == "bot" else "user",
                                       self.owned.created_by(user_id), caller.app_id, role)

    def refuse_another_apps_user(self, caller: Principal | None, user_id: str) -> None:
        """Forbidden when an app's call names another app's own user to change (its roles,
        agent status, departments, custom fields, active flag): that app's identity, which only
        its install and uninstall manage (DESIGN rules 1 and 11), whatever a policy's
        `any_user` says. From Stockade's own record (`rc_users`), before any request leaves."""
        if isinstance(caller, Caller) and user_id != caller.app_user_id \
                and self.owned.app_of_user(user_id) is not None:
            raise Forbidden("that is another app's own user: only its install and uninstall "
                            "manage it")

    def refuse_deactivation(self, caller: Principal, user_id: str) -> None:
        """An app never deactivates another app's own user (DESIGN rule 11: its install and
        uninstall manage it) nor a user holding an admin-class role (rule 10: the workspace's
        admin, or the host's own service account, whose loss stops every app), whatever a
        policy's `any_user` says; Forbidden before the request leaves. Unavailable when the
        workspace's roles cannot be read now (refused for now, as a role change is)."""
        if not isinstance(caller, Caller):
            return
        self.refuse_another_apps_user(caller, user_id)
        role = self.privileged_role_held(self.user_doc(user_id=user_id))
        if role is not None:
            raise Forbidden(f"apps may not deactivate a user holding the privileged role {role!r}")

    def privileged_role_held(self, doc: dict[str, Any]) -> str | None:
        """A privileged role the user of this users.info document holds, or None. Unavailable
        when the document names no roles."""
        raw = doc.get("roles")
        # A role given as a string is that role, as Rocket.Chat's `$in` checks read it; an
        # answer naming no roles cannot tell an admin from a person (the service account's
        # `view-full-other-user-info` shows them): refused for now.
        if isinstance(raw, str):
            held = [raw]
        elif isinstance(raw, list):
            held = [r for r in raw if isinstance(r, str)]
        else:
            raise Unavailable("the workspace did not say which roles the user holds: not "
                              "deactivated now")
        return next((r for r in held if self.role_privileged(r)), None)

    # -- rule 9 across the network ----------------------------------------------------------------
    def _write(self, op_id: str | None, action: str, probe: dict[str, Any],
               send: Callable[[], T]) -> T:
        if op_id is None:
            return send()  # an operator's own call (demo, CLI): no intent to settle
        self.owned.begin_op(op_id, action, probe, self.clock.now())
        try:
            result = send()
        except ReadBackFailed:
            self.owned.end_op(op_id, "applied")  # the workspace said so: the gate keeps units
            raise
        except Unavailable as exc:
            if not exc.outcome_unknown:
                self.owned.end_op(op_id, "failed")
            raise  # unknown: stays pending; the gate asks was_applied, or the next start does
        except ServerError:
            self.owned.end_op(op_id, "failed")
            raise
        self.owned.end_op(op_id, "applied")
        return result

    def after_write(self, action: str, read: Callable[[], T]) -> T:
        """`read` (the write's result) once the workspace acknowledged the write: its failure
        is `ReadBackFailed`, never taken for the write's own."""
        try:
            return read()
        except ServerError as exc:
            raise ReadBackFailed(action, exc) from None

    def was_applied(self, op_id: str) -> bool:
        """Whether a remote write with this op_id took effect: from Stockade's record when it
        knows, else by reading the workspace back (`_probe`). Raises `Unavailable` when the
        workspace cannot be asked (the intent then stays pending)."""
        found = self.owned.op(op_id)
        if found is None:
            return False  # never left the host: nothing was sent
        action, state, probe = found
        if state != "pending":
            return state == "applied"
        try:
            applied = self._probe(action, probe)
        except ServerError:
            raise
        except Exception as exc:  # any misread answer: "cannot say now"
            # An answer the read-back cannot use (a user document without `_id`, an id no
            # store takes) is the workspace unable to say, as a 503 is: the intent stays
            # pending, its units reserved. Raised as it was, it stopped `Host.start` (the
            # settlement asks this of every unfinished call and takes only ServerError as
            # "cannot say now"), so a workspace could keep the home from being served.
            raise Unavailable(f"cannot read back whether {action} applied: the workspace's "
                              f"answer could not be used ({type(exc).__name__})") from exc
        self.owned.end_op(op_id, "applied" if applied else "failed")
        return applied

    def _probe(self, action: str, probe: dict[str, Any]) -> bool:
        """Read the workspace to tell whether a pending write happened. Writes with no state to
        read back (a message whose id the workspace chose) count as applied: the units stay
        charged, the safe side of a quota (docs/ROCKETCHAT.md)."""
        try:
            if action == "users.create":
                doc = self.user_doc(username=str(probe["username"]))
                self.owned.record_user(str(doc["_id"]), str(doc.get("username")),
                                       created_by_app=probe.get("app_id"), app_id=None,
                                       now=self.clock.now())
                return True
            if action in ("roles.assign", "roles.remove"):
                roles = self.user_doc(user_id=str(probe["user_id"])).get("roles")
                # Only a list names roles ("helper" in the string "helpers" is no holding), by
                # any of the role's names: a user's `roles` hold a custom role's `_id`.
                held = isinstance(roles, list) and not self.role_powers.names_of(
                    str(probe["role"])).isdisjoint(r for r in roles if isinstance(r, str))
                return held == (action == "roles.assign")
            if action == "users.deactivate":
                return not convert.active(self.user_doc(user_id=str(probe["user_id"])))
            if action == "livechat.close_room":
                room = self.get("rooms.info", roomId=str(probe["room_id"])).get("room") or {}
                return not room.get("open", True)
            if action == "livechat.take_room":
                room = self.get("rooms.info", roomId=str(probe["room_id"])).get("room") or {}
                return (room.get("servedBy") or {}).get("_id") == probe.get("agent_id")
        except RouteMissing:
            raise Unavailable(f"cannot read back whether {action} applied: the workspace "
                              "answered 404") from None
        except NotFound:
            return False
        return True
