"""`RemoteServer`: the `ServerAdapter` for a real Rocket.Chat workspace, over its REST API.

Users, roles, agents and departments here; rooms, visitors and messages in `RemoteRooms`; the
client, Stockade's own record of the workspace and rule 9 across the network in `RemoteCore`.
Each method names the documented call it makes. Ownership (which app created a user), seats
and app users are Stockade's own record (`Owned`): Rocket.Chat keeps none of it.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from host.server import limits, users
from host.server.embedded import EmbeddedServer
from host.server.errors import Conflict, InvalidArgument, NotFound, Unavailable
from host.server.principals import SYSTEM, Operator, Principal, app_of
from host.server.remote import convert, deadline
from host.server.remote.client import RouteMissing
from host.server.remote.rooms import RemoteRooms
from host.server.shapes import Agent, Department, Role, User, UserStanding

# users.find_by_field: at most this many pages of 100 users are scanned when the workspace
# ignores the `query` filter (the documented fallback; its cost is one request per 100 users).
MAX_SCAN_PAGES = 50
MAX_FOUND = 500
# users.list's default projection leaves `customFields` out: the search asks for them
# (`fields`, merged into that projection by Rocket.Chat). A listed user still shown without them
# (a workspace that ignores `fields`) is read with users.info to tell whether it matches, at most
# this many per search (one request each); any beyond are left out, never returned unchecked.
LIST_FIELDS = json.dumps({"customFields": 1})
MAX_VERIFY = 20

log = logging.getLogger("stockade.remote")


class RemoteServer(RemoteRooms):
    """A Rocket.Chat workspace behind the `ServerAdapter` protocol."""

    # Not every write leaves an op record to read back after a crash (an agent's display name
    # is kept by Stockade, outside `_write`): a write's success is recorded at once.
    op_log_exact = False

    # -- users.read ---------------------------------------------------------------------------
    def users_get(self, caller: Principal, user_id: str) -> User:
        """GET users.info ?userId=."""
        return self.to_user(self.user_doc(user_id=limits.ident(user_id, "user_id")))

    def users_get_by_username(self, caller: Principal, username: str) -> User:
        """GET users.info ?username=."""
        return self.to_user(self.user_doc(username=limits.username(username)))

    def users_find_by_field(self, caller: Principal, key: str, value: str) -> list[User]:
        """GET users.list ?query={"customFields.KEY": VALUE}&fields={"customFields": 1} — the
        filter Rocket.Chat documents, and the projection that shows custom fields (its default
        one omits them). A workspace that ignores `query` (Rocket.Chat 7 needs
        ALLOW_UNSAFE_QUERY_AND_FIELDS_API_PARAMS for it) returns every user instead: the pages
        are then filtered here, at one request per 100 users, at most MAX_SCAN_PAGES pages.
        Only users whose custom field was seen to match are returned (`MAX_VERIFY`). The whole
        search ends by the client's call deadline (`RcClient.deadline_s`), as one call does:
        past it the app gets Unavailable, never a partial answer read as "no such user"."""
        key = limits.ident(key, "key")
        query = json.dumps({f"customFields.{key}": value})
        found: list[User] = []
        budget = [MAX_VERIFY]
        # One app call, one deadline: the whole search (its pages and its users.info reads)
        # ends by the client's call deadline, each request's sockets clamped to it too.
        give_up = time.monotonic() + self.client.deadline_s
        with deadline.until(give_up):
            for page in range(MAX_SCAN_PAGES):
                _in_time(give_up, self.client.deadline_s)
                res = self.get("users.list", query=query, fields=LIST_FIELDS, count="100",
                               offset=str(page * 100))
                docs = [d for d in res.get("users") or [] if isinstance(d, dict)]
                if self._scan_page(docs, key, value, found, budget, give_up) \
                        or (page + 1) * 100 >= _total(res) or len(found) >= MAX_FOUND:
                    break
        if budget[0] < 0:
            log.warning("users.find_by_field: the workspace listed %d user(s) without custom "
                        "fields beyond the %d read one by one; they were left out",
                        -budget[0], MAX_VERIFY)
        return found[:MAX_FOUND]

    def _scan_page(self, docs: list[dict[str, Any]], key: str, value: str, found: list[User],
                   budget: list[int], give_up: float) -> bool:
        """Add a page's users whose field `key` is `value` to `found`; True for an empty page
        (the end of the list)."""
        for d in docs:
            if "customFields" not in d:
                _in_time(give_up, self.client.deadline_s)  # a users.info read follows
            full = self._with_custom_fields(d, budget)
            if full is not None and _field(full, key) == value:
                found.append(self.to_user(full))
        return not docs

    def _with_custom_fields(self, doc: dict[str, Any], budget: list[int]
                            ) -> dict[str, Any] | None:
        """`doc` if it shows its custom fields, else the user read with users.info (None when
        the verify budget is spent or the user is gone)."""
        if "customFields" in doc:
            return doc
        budget[0] -= 1
        if budget[0] < 0 or not doc.get("_id"):
            return None
        try:
            return self.user_doc(user_id=str(doc["_id"]))
        except NotFound:
            return None

    # -- users.create / update / deactivate ---------------------------------------------------
    def users_create(
        self, caller: Principal, username: str, name: str, type: str, email: str | None = None,
        roles: Sequence[str] = (), custom_fields: Mapping[str, str] | None = None, *,
        op_id: str | None = None,
    ) -> User:
        """POST users.create {username, name, email?, roles, customFields}; the creating app is
        recorded in Stockade's store. Not retried (a repeat is a Conflict, or a second user)."""
        username = limits.username(username)
        if app_of(caller) is not None:  # each install's own user is app.<id>: never an app's
            users.check_not_reserved(username)
        name = limits.name(name)
        if type not in ("user", "bot"):
            raise InvalidArgument("type must be 'user' or 'bot' (app users come with installs)")
        role_list = list(limits.roles(list(roles)))
        if type == "bot" and "bot" not in role_list:
            role_list.append("bot")
        self.refuse_privileged(caller, role_list)
        body: dict[str, Any] = {"username": username, "name": name, "roles": role_list or
                                ["user"], "joinDefaultChannels": False,
                                "sendWelcomeEmail": False, "requirePasswordChange": False,
                                # Never vouch for an address the app gave: a verified e-mail is
                                # what Rocket.Chat's OAuth sign-in merges a person's account on,
                                # so the person whose address it is could sign in as the app's
                                # user (which the app acts as) or hand it their sign-in.
                                "verified": False}
        if email is not None:
            body["email"] = limits.email(email)
        fields = limits.string_fields(custom_fields)
        if fields:
            body["customFields"] = fields
        app = app_of(caller)
        # The username must be free before the create leaves. A create whose answer is lost is
        # settled by finding the username (`_probe`): one held all along by a person (the
        # workspace refused the create, a proxy turned that into a 502, or it answered late)
        # was recorded as the app's creation, and the app could then send as that person,
        # deactivate them, rewrite their fields (DESIGN rule 11: ownership).
        try:
            self.user_doc(username=username)
        except RouteMissing:
            raise Unavailable("users.info answered 404: cannot tell whether the username is "
                              "free; nothing was sent") from None
        except NotFound:
            pass
        else:
            raise Conflict(f"the username {username!r} is already taken on the workspace")

        def send() -> User:
            doc = self.post("users.create", body, idempotent=False)["user"]
            self.owned.record_user(str(doc["_id"]), username, created_by_app=app, app_id=None,
                                   now=self.clock.now())
            return self.to_user(doc)

        return self._write(op_id, "users.create", {"username": username, "app_id": app}, send)

    def users_set_custom_fields(self, caller: Principal, user_id: str,
                                fields: Mapping[str, str | None], *, op_id: str | None = None
                                ) -> User:
        """POST users.update {userId, data: {customFields}} with the merged fields (read first
        with users.info, so a workspace that replaces the object keeps the other keys; a None
        value removes its key)."""
        user_id = limits.ident(user_id, "user_id")
        self.refuse_another_apps_user(caller, user_id)
        checked = limits.fields(fields, allow_delete=True)
        current: dict[str, Any] = dict(self.user_doc(user_id=user_id).get("customFields") or {})
        current.update(checked)  # a None stays in: the workspace drops (or nulls) that key

        def send() -> User:
            doc = self.post("users.update", {"userId": user_id,
                                             "data": {"customFields": current}},
                            idempotent=True)["user"]
            return self.to_user(doc)

        return self._write(op_id, "users.set_custom_fields", {}, send)

    def users_deactivate(self, caller: Principal, user_id: str, *, op_id: str | None = None
                         ) -> User:
        """POST users.setActiveStatus {userId, activeStatus: false} (idempotent)."""
        return self.users_set_active(caller, user_id, False, op_id=op_id)

    def users_set_active(self, caller: Principal, user_id: str, active: bool, *,
                         op_id: str | None = None) -> User:
        """POST users.setActiveStatus {userId, activeStatus}."""
        user_id = limits.ident(user_id, "user_id")
        if not active:
            self.refuse_deactivation(caller, user_id)

        def send() -> User:
            self.post("users.setActiveStatus", {"userId": user_id, "activeStatus": active},
                      idempotent=True)
            self.owned.set_active(user_id, active)
            return self.after_write("users.deactivate", lambda: self.users_get(SYSTEM, user_id))

        return self._write(op_id, "users.deactivate", {"user_id": user_id}, send)

    # -- roles ---------------------------------------------------------------------------------
    def roles_assign(self, caller: Principal, user_id: str, role: str, *,
                     op_id: str | None = None) -> User:
        """POST roles.addUserToRole {roleName, username} (idempotent)."""
        return self._role(caller, user_id, role, op_id, add=True)

    def roles_remove(self, caller: Principal, user_id: str, role: str, *,
                     op_id: str | None = None) -> User:
        """POST roles.removeUserFromRole {roleName, username} (idempotent)."""
        return self._role(caller, user_id, role, op_id, add=False)

    def _username_of(self, doc: dict[str, Any] | None, user_id: str) -> str:
        """The username the role and agent routes name a user by (they take no id), from its
        `users.info` document (`doc`, read here when None)."""
        username = (doc if doc is not None else self.user_doc(user_id=user_id)).get("username")
        if not isinstance(username, str) or not username:
            # An OAuth sign-up has none yet: str(None) named the user called `None`.
            raise Conflict(f"user {user_id!r} has no username yet: the workspace's role and "
                           f"agent routes cannot name it")
        return username

    def _role(self, caller: Principal, user_id: str, role: str, op_id: str | None, *,
              add: bool) -> User:
        user_id = limits.ident(user_id, "user_id")
        self.refuse_another_apps_user(caller, user_id)
        role = limits.role_name(role)
        self.refuse_privileged(caller, [role])
        doc = self.user_doc(user_id=user_id)
        if add:
            self.refuse_impersonation(caller, user_id, doc, role)
        username = self._username_of(doc, user_id)
        route = "roles.addUserToRole" if add else "roles.removeUserFromRole"

        def send() -> User:
            self.post(route, {"roleName": role, "username": username}, idempotent=True)
            return self.after_write(route, lambda: self.users_get(SYSTEM, user_id))

        action = "roles.assign" if add else "roles.remove"
        return self._write(op_id, action, {"user_id": user_id, "role": role}, send)

    def roles_list(self) -> list[Role]:
        """GET roles.list; `privileged` as `role_privileged` answers (see RemoteCore)."""
        docs = self.get("roles.list").get("roles") or []
        return [Role(name=str(d.get("name") or d.get("_id")),
                     privileged=self.role_privileged(str(d.get("name") or d.get("_id"))),
                     description=str(d.get("description") or "")) for d in docs
                if isinstance(d, dict)]

    def is_privileged(self, role: str) -> bool:
        """Whether the role is admin-class here: the fixed list and the config's, or a power in
        the workspace's permission table (read at most once a minute)."""
        return self.role_privileged(role)

    # -- livechat agents and departments ---------------------------------------------------------
    def agent(self, user_id: str) -> Agent:
        """GET livechat/users/agent/{id}, then GET livechat/agents/{id}/departments (the user
        document names no departments)."""
        user_id = limits.ident(user_id, "user_id")
        doc = self.get(f"livechat/users/agent/{user_id}").get("user")
        if not isinstance(doc, dict):
            raise NotFound(f"user {user_id!r} is not a livechat agent")
        deps = self.get(f"livechat/agents/{user_id}/departments").get("departments")
        return convert.agent(doc, deps if isinstance(deps, list) else [])

    def livechat_add_agent(self, caller: Principal, user_id: str, *, op_id: str | None = None
                           ) -> Agent:
        """POST livechat/users/agent {username} (idempotent)."""
        self.refuse_another_apps_user(caller, limits.ident(user_id, "user_id"))
        username = self._username_of(None, user_id)

        def send() -> Agent:
            self.post("livechat/users/agent", {"username": username}, idempotent=True)
            return self.after_write("livechat.add_agent", lambda: self.agent(user_id))

        return self._write(op_id, "livechat.add_agent", {}, send)

    def livechat_remove_agent(self, caller: Principal, user_id: str, *,
                              op_id: str | None = None) -> Agent:
        """DELETE livechat/users/agent/{id} (the agent read first, to return it)."""
        self.refuse_another_apps_user(caller, limits.ident(user_id, "user_id"))
        before = self.agent(user_id)

        def send() -> Agent:
            self.client.call("DELETE", f"livechat/users/agent/{before['user_id']}",
                             idempotent=True)
            return before

        return self._write(op_id, "livechat.remove_agent", {}, send)

    def livechat_set_agent_status(self, caller: Principal, user_id: str, status: str, *,
                                  op_id: str | None = None) -> Agent:
        """POST livechat/agent.status {agentId, status} (idempotent)."""
        if status not in ("available", "not-available"):
            raise InvalidArgument("status must be 'available' or 'not-available'")
        user_id = limits.ident(user_id, "user_id")
        self.refuse_another_apps_user(caller, user_id)

        def send() -> Agent:
            self.post("livechat/agent.status", {"agentId": user_id, "status": status},
                      idempotent=True)
            return self.after_write("livechat.set_agent_status", lambda: self.agent(user_id))

        return self._write(op_id, "livechat.set_agent_status", {}, send)

    def set_agent_status(self, user_id: str, status: str) -> Agent:
        """An operator sets an agent's status (the host's app-user set-up)."""
        return self.livechat_set_agent_status(Operator(None), user_id, status)

    def _department_agents(self, caller: Principal | None, department: str, user_id: str,
                           op_id: str | None, *, add: bool) -> Department:
        """POST livechat/department/{id}/agents {upsert: [...], remove: [...]}; the department
        read back with its agents (GET livechat/department/{_id})."""
        user_id = limits.ident(user_id, "user_id")
        self.refuse_another_apps_user(caller, user_id)
        dep = convert.department(self._department_doc(department), [])
        entry = [{"agentId": user_id, "username": self.user_doc(user_id=user_id)["username"]}]
        body = {"upsert": entry if add else [], "remove": [] if add else entry}
        action = "livechat.add_department_agent" if add else "livechat.remove_department_agent"

        def send() -> Department:
            self.post(f"livechat/department/{dep['id']}/agents", body, idempotent=True)
            dep["agents"] = self.after_write(action, lambda: self.department_agents(dep["id"]))
            return dep

        return self._write(op_id, action, {}, send)

    def livechat_add_department_agent(self, caller: Principal, department: str, user_id: str,
                                      *, op_id: str | None = None) -> Department:
        return self._department_agents(caller, department, user_id, op_id, add=True)

    def livechat_remove_department_agent(self, caller: Principal, department: str,
                                         user_id: str, *, op_id: str | None = None
                                         ) -> Department:
        return self._department_agents(caller, department, user_id, op_id, add=False)

    def add_department_agent(self, department: str, user_id: str) -> Department:
        """Operator set-up (the host's app users of `agent_departments`)."""
        return self._department_agents(SYSTEM, department, user_id, None, add=True)

    # -- for the host ---------------------------------------------------------------------------
    def user_created_by(self, user_id: str) -> str | None:
        """From Stockade's record; a user it has no record of is read (NotFound if absent)."""
        known = self.owned.created_by(user_id)
        if known is None:
            self.user_doc(user_id=user_id)
        return known

    def user_standing(self, user_id: str, *, privileged: bool = False) -> UserStanding:
        """Who this user is, from Stockade's record (`rc_users`); the user read from the
        workspace only when Stockade has no record of its creator, or `privileged` asks for its
        roles (NotFound if absent; Unavailable when its roles are not shown)."""
        created, app = self.owned.created_by(user_id), self.owned.app_of_user(user_id)
        held: bool | None = None
        if privileged:
            held = self.privileged_role_held(self.user_doc(user_id=user_id)) is not None
        elif created is None and app is None:
            self.user_doc(user_id=user_id)
        return UserStanding(created, app, held)

    def users_count_active_app_created(self) -> int:
        return self.owned.count_active_created()

    def seats_in_use(self, pending_op_ids: Sequence[str]) -> int:
        return self.owned.seats_in_use(pending_op_ids)

    def count_users_created_by(self, app_id: str) -> int:
        return len(self.owned.users_created_by(app_id))

    def deactivate_users_created_by(self, app_id: str) -> int:
        changed = 0
        for uid in self.owned.users_created_by(app_id, active_only=True):
            self.users_set_active(SYSTEM, uid, False)
            changed += 1
        return changed

    def agents_of_app(self, app_id: str) -> list[str]:
        mine = self.owned.users_created_by(app_id)
        own = self.owned.app_user(app_id)
        return sorted(mine + ([own[0]] if own else []))

    def remove_agents_of_app(self, app_id: str) -> int:
        """DELETE livechat/users/agent/{id} for each of `agents_of_app`, after taking each out of
        every department (livechat/department/{id}/agents), so routing picks none of them
        (uninstall --agents remove); returns how many were agents."""
        removed = 0
        mine = set(self.agents_of_app(app_id))
        for doc in self.department_docs():
            if doc.get("numAgents") == 0:
                continue  # no agent to take out: spare the request
            for uid in sorted(mine & set(self.department_agents(str(doc["_id"])))):
                self._department_agents(SYSTEM, str(doc["_id"]), uid, None, add=False)
        for uid in sorted(mine):
            try:
                self.client.call("DELETE", f"livechat/users/agent/{uid}", idempotent=True)
                removed += 1
            except NotFound:
                pass
        return removed

    def create_app_user(self, app_id: str, name: str) -> User:
        """The app's own user `app.<app_id>` (role `bot`), made once with users.create and
        reactivated on a reinstall; recorded as the app's in Stockade's store."""
        known = self.owned.app_user(app_id)
        if known is not None:
            self.users_set_active(SYSTEM, known[0], True)
            return self.users_get(SYSTEM, known[0])
        username = limits.username(f"app.{app_id}")
        try:
            doc = self.post("users.create", {
                "username": username, "name": limits.name(name), "roles": ["bot"],
                "joinDefaultChannels": False, "sendWelcomeEmail": False, "verified": True,
                "requirePasswordChange": False}, idempotent=False)["user"]
        except Conflict:
            doc = self.user_doc(username=username)  # made by an earlier home: taken over ...
            roles = set(doc.get("roles") or ())
            if "bot" not in roles or not roles <= _APP_USER_ROLES:
                # ... unless a person holds the name: the app would speak and act as them
                raise Conflict(
                    f"the username {username!r} is held on the workspace by a user that is "
                    f"not an app user (roles {', '.join(sorted(map(str, roles))) or 'none'}): "
                    "rename or remove that user, then start the app again") from None
        self.owned.record_user(str(doc["_id"]), username, created_by_app=None, app_id=app_id,
                               now=self.clock.now())
        return self.to_user(doc)

    def remove_app_user(self, app_id: str) -> User | None:
        known = self.owned.app_user(app_id)
        if known is None:
            return None
        try:
            self.client.call("DELETE", f"livechat/users/agent/{known[0]}", idempotent=True)
        except NotFound:
            pass
        return self.users_set_active(SYSTEM, known[0], False)


def _total(res: dict[str, Any]) -> int:
    """users.list's `total`. A count that is not a number ends the scan: int("many") raised
    ValueError, which the gate reads as the app's bad input (audited invalid_argument)."""
    said = res.get("total")
    return said if isinstance(said, int) else 0


def _in_time(give_up: float, deadline_s: float) -> None:
    """Unavailable once a search's deadline has passed (a read: nothing was applied). Guards
    the app's runner: a workspace answering each of 50 pages just inside the per-request
    deadline held one bridge call, and the runner thread waiting on it, for minutes."""
    if time.monotonic() >= give_up:
        raise Unavailable(f"the workspace did not list its users within the call's "
                          f"{deadline_s:g} s deadline (users.find_by_field)",
                          nothing_applied=True)


def _field(doc: dict[str, Any], key: str) -> Any:
    fields = doc.get("customFields")
    return fields.get(key) if isinstance(fields, dict) else None


# The roles an app's own user on a workspace may hold for a home to adopt it as its app's (made
# by an earlier home: `bot`, and `livechat-agent` once the host made it an agent). A user with
# any other role holding `app.<id>` is a person's, never an app's.
_APP_USER_ROLES = frozenset({"bot", "livechat-agent"})

# The servers a host can serve: the embedded one, or a workspace over REST.
Workspace = EmbeddedServer | RemoteServer


def foreign_app_user(server: Workspace, app_id: str, user_id: str) -> bool:
    """Against a workspace, whether an install's app user is not the workspace's (`app install`
    made it on the embedded server): the host then makes (or finds) the app's user on the
    workspace and records that one. Always False for the embedded server."""
    if not isinstance(server, RemoteServer):
        return False
    mine = server.owned.app_user(app_id)
    return mine is None or mine[0] != user_id
