"""`EmbeddedServer`: the default chat server, SQLite-backed, in the host process.

Principals: the adapter methods take a `Caller` (an app); the same methods accept an `Operator`
(a REST identity, an agent at a console, the system) for the demo, the tests and the REST API.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from host.server import impersonation, limits, livechat, roles, rooms, users
from host.server.db import Tx
from host.server.errors import Conflict, Forbidden, InvalidArgument, NotFound
from host.server.principals import SYSTEM, Caller, Operator, Principal, app_of
from host.server.rest_access import PERMISSIONS
from host.server.room_ops import RoomOps
from host.server.shapes import Agent, Department, Role, User, UserStanding

# The agents an app brought: users it created, and its own app user.
_APP_AGENTS = (
    "SELECT a.user_id FROM agents a JOIN users u ON u.id = a.user_id"
    " WHERE u.created_by_app = ? OR u.app_id = ? ORDER BY a.user_id"
)


class EmbeddedServer(RoomOps):
    """The embedded omnichannel server (implements `ServerAdapter`): users, roles and agents
    here; rooms, visitors and messages in `RoomOps`; transactions and events in `ServerCore`."""

    # -- users ----------------------------------------------------------------------------------

    def users_get(self, caller: Principal, user_id: str) -> User:
        """The user with this id. NotFound."""
        # One statement is its own consistent snapshot: no BEGIN/COMMIT round trip needed.
        return users.get(self.db.conn(), user_id)

    def users_get_by_username(self, caller: Principal, username: str) -> User:
        """The user with this username (case-insensitive). NotFound."""
        return users.get_by_username(self.db.conn(), username)

    def users_find_by_field(self, caller: Principal, key: str, value: str) -> list[User]:
        """Users whose custom field `key` equals `value` (indexed; at most 500)."""
        with self.db.read() as c:
            return users.find_by_field(c, key, value)

    def users_create(
        self, caller: Principal, username: str, name: str, type: str, email: str | None = None,
        roles: Sequence[str] = (), custom_fields: Mapping[str, str] | None = None, *,
        op_id: str | None = None,
    ) -> User:
        """Create a user; an app may create only `user` or `bot` users, never with a privileged
        role, and what it creates is stamped `created_by_app`. An app never creates a user in
        the namespace of the apps' own users (`users.check_not_reserved`)."""
        username = limits.username(username)
        app_id = app_of(caller)
        if app_id is not None:  # refused before any transaction opens, as limits are
            users.check_not_reserved(username)
        name = limits.name(name)
        if type not in ("user", "bot"):
            raise InvalidArgument("type must be 'user' or 'bot' (app users come with installs)")
        if email is not None:
            email = limits.email(email)
        role_t = limits.roles(list(roles))
        fields = limits.string_fields(custom_fields)
        args = {"username": username, "name": name, "type": type, "email": email,
                "roles": list(role_t), "custom_fields": fields}

        def apply(tx: Tx) -> User:
            # An app's user never has a privileged role: `users.create` refuses one when
            # `created_by_app` is set (DESIGN rule 10 behind the gate too).
            return users.create(
                tx.conn, tx.now, username=username, name=name, type=type, email=email,
                roles=role_t, custom_fields=fields, created_by_app=app_id,
            )

        return self._write(caller, op_id, "users.create", args, apply)

    def users_set_custom_fields(
        self, caller: Principal, user_id: str, fields: Mapping[str, str | None], *,
        op_id: str | None = None,
    ) -> User:
        """Merge custom fields (a None value removes the key)."""
        user_id = limits.ident(user_id, "user_id")
        checked = limits.fields(fields, allow_delete=True)
        return self._write(
            caller, op_id, "users.set_custom_fields", {"user_id": user_id, "fields": checked},
            _on_user(caller, user_id, lambda tx: users.set_custom_fields(tx.conn, user_id,
                                                                         checked)),
        )

    def users_deactivate(
        self, caller: Principal, user_id: str, *, op_id: str | None = None
    ) -> User:
        """Deactivate a user (idempotent)."""
        user_id = limits.ident(user_id, "user_id")
        return self._write(
            caller, op_id, "users.deactivate", {"user_id": user_id},
            lambda tx: users.set_active(tx.conn, user_id, _deactivation(tx, caller, user_id)),
        )

    def users_set_active(
        self, caller: Principal, user_id: str, active: bool, *, op_id: str | None = None
    ) -> User:
        """Activate or deactivate a user (REST `users.setActiveStatus`)."""
        user_id = limits.ident(user_id, "user_id")
        if not isinstance(active, bool):
            raise InvalidArgument("active must be true or false")

        def apply(tx: Tx) -> User:
            flag = active if active else _deactivation(tx, caller, user_id)
            return _then_dispatch(tx, user_id, users.set_active(tx.conn, user_id, flag))

        return self._write(
            caller, op_id, "users.set_active", {"user_id": user_id, "active": active}, apply)

    def user_created_by(self, user_id: str) -> str | None:
        """The app that created this user (None if not app-created). NotFound."""
        return users.created_by(self.db.conn(), user_id)  # one statement: its own snapshot

    def user_standing(self, user_id: str, *, privileged: bool = False) -> UserStanding:
        """Who this user is, for the gate's facts (`users.standing`). NotFound."""
        return users.standing(self.db.conn(), user_id, privileged=privileged)

    def users_set_profile(self, caller: Principal, user_id: str, name: str | None,
                          email: str | None) -> User:
        """Change a user's name and/or e-mail (REST `users.update`, operators only)."""
        if app_of(caller) is not None:
            raise Forbidden("apps change only custom fields and the active flag of users")
        user_id = limits.ident(user_id, "user_id")
        name = limits.name(name) if name is not None else None
        email = limits.email(email) if email is not None else None
        with self.db.write() as c:
            return users.set_profile(c, user_id, name, email)

    def users_delete(self, caller: Principal, user_id: str) -> None:
        """Delete a user (REST `users.delete`, operators only; apps never reach it)."""
        if app_of(caller) is not None:
            raise Forbidden("apps deactivate users; they never delete one")
        user_id = limits.ident(user_id, "user_id")
        with self.db.write() as c:
            users.delete(c, user_id)

    def users_in_role(self, role: str) -> list[User]:
        """Users holding a role, by user name (REST `roles.getUsersInRole`, managers)."""
        with self.db.read() as c:
            return users.in_role(c, role)

    def users_count_active_app_created(self) -> int:
        """Active app-created users (the workspace seat ceiling)."""
        with self.db.read() as c:
            return users.count_active_app_created(c)

    def seats_in_use(self, pending_op_ids: Sequence[str]) -> int:
        """Seats in use: active app-created users plus pending creations not applied yet."""
        if not pending_op_ids:
            # One statement is its own snapshot: no BEGIN/COMMIT around it (the usual case: a
            # host's own held creations are committed before its next admission counts).
            return users.count_active_app_created(self.db.conn())
        with self.db.read() as c:
            return users.seats_in_use(c, pending_op_ids)

    def count_users_created_by(self, app_id: str) -> int:
        """Users this app created (active or not)."""
        with self.db.read() as c:
            return users.count_created_by(c, app_id)

    def deactivate_users_created_by(self, app_id: str) -> int:
        """Deactivate every user this app created; returns how many changed."""
        with self.db.write() as c:
            return users.deactivate_created_by(c, app_id)

    def agents_of_app(self, app_id: str) -> list[str]:
        """User ids of the livechat agents that are this app's: users it created and its own
        app user (what uninstall --agents remove would stop routing to)."""
        with self.db.read() as c:
            return [r[0] for r in c.execute(_APP_AGENTS, (app_id, app_id)).fetchall()]

    def remove_agents_of_app(self, app_id: str) -> int:
        """Stop every agent of `agents_of_app` being one (routing no longer picks them; rooms
        they served keep them as history); returns how many."""
        with self.db.write() as c:
            ids = [r[0] for r in c.execute(_APP_AGENTS, (app_id, app_id)).fetchall()]
            for uid in ids:
                livechat.remove_agent(c, uid)
                c.execute("DELETE FROM department_agents WHERE user_id = ?", (uid,))
            return len(ids)

    def create_app_user(self, app_id: str, name: str) -> User:
        """The app's own user (type `app`, username `app.<app_id>`, role `app`). Idempotent per
        app id: a reinstall gets the same user back, reactivated."""
        username = limits.username(f"app.{app_id}")
        name = limits.name(name)
        with self.db.write() as c:
            existing = users.app_user(c, app_id)
            if existing is not None:
                if not existing["active"]:
                    return users.set_active(c, existing["id"], True)
                return existing
            try:
                return users.create(
                    c, self.clock.now(), username=username, name=name, type="app", email=None,
                    roles=("app",), custom_fields={}, created_by_app=None, app_id=app_id,
                )
            except Conflict:
                raise Conflict(_held(username, app_id)) from None

    def app_username_holder(self, app_id: str) -> User | None:
        """The user holding `app.<app_id>` when it is not that app's own user (an operator's,
        or one made before apps were refused the name, `users.check_not_reserved`): the app
        cannot get its user while it is there, so an install asks this before it writes."""
        try:
            held = users.get_by_username(self.db.conn(), limits.username(f"app.{app_id}"))
        except NotFound:
            return None
        return None if held["app_id"] == app_id else held

    def remove_app_user(self, app_id: str) -> User | None:
        """Deactivate the app's user and drop its agent record (rooms it served keep it as
        history); None if the app has no user."""
        with self.db.write() as c:
            u = users.app_user(c, app_id)
            if u is None:
                return None
            c.execute("DELETE FROM agents WHERE user_id = ?", (u["id"],))
            c.execute(
                "DELETE FROM user_roles WHERE user_id = ? AND role = ?",
                (u["id"], livechat.AGENT_ROLE),
            )
            return users.set_active(c, u["id"], False)

    # -- roles ----------------------------------------------------------------------------------

    def roles_list(self) -> list[Role]:
        """Every role with its privileged flag."""
        with self.db.read() as c:
            return roles.list_roles(c)

    def is_privileged(self, role: str) -> bool:
        """Whether the role is admin-class on this server (unknown roles: False)."""
        return roles.is_privileged(self.db.conn(), role)  # one statement: its own snapshot

    def _refuse_privileged(self, tx: Tx, role_names: Sequence[str]) -> None:
        # DESIGN rule 10 also holds here, behind the gate: an app never touches admin-class roles.
        for r in role_names:
            if roles.is_privileged(tx.conn, r):
                raise Forbidden(f"apps may not grant or remove the privileged role {r!r}")

    def roles_assign(
        self, caller: Principal, user_id: str, role: str, *, op_id: str | None = None
    ) -> User:
        """Give a role (idempotent). An app is refused privileged roles."""
        return self._role_change(caller, user_id, role, op_id, add=True)

    def roles_remove(
        self, caller: Principal, user_id: str, role: str, *, op_id: str | None = None
    ) -> User:
        """Take a role (idempotent). An app is refused privileged roles."""
        return self._role_change(caller, user_id, role, op_id, add=False)

    def _role_change(
        self, caller: Principal, user_id: str, role: str, op_id: str | None, *, add: bool
    ) -> User:
        user_id = limits.ident(user_id, "user_id")
        role = limits.role_name(role)
        is_app = isinstance(caller, Caller)

        def apply(tx: Tx) -> User:
            if is_app:
                self._refuse_privileged(tx, (role,))
                if add and role in _IMPERSONATING_ROLES:
                    u = users.get(tx.conn, user_id)
                    impersonation.refuse_to_person(u["type"], u["created_by_app"],
                                                   str(app_of(caller)), role)
            if not add:
                return roles.remove(tx.conn, user_id, role)
            return _then_dispatch(tx, user_id, roles.assign(tx.conn, user_id, role))

        action = "roles.assign" if add else "roles.remove"
        return self._write(caller, op_id, action, {"user_id": user_id, "role": role},
                           _on_user(caller, user_id, apply))

    # -- livechat agents and departments --------------------------------------------------------

    def livechat_add_agent(
        self, caller: Principal, user_id: str, *, op_id: str | None = None
    ) -> Agent:
        """Make a user an agent (not-available until set)."""
        user_id = limits.ident(user_id, "user_id")
        return self._write(
            caller, op_id, "livechat.add_agent", {"user_id": user_id},
            _on_user(caller, user_id, lambda tx: livechat.add_agent(tx.conn, tx.now, user_id)),
        )

    def livechat_remove_agent(
        self, caller: Principal, user_id: str, *, op_id: str | None = None
    ) -> Agent:
        """Stop a user being an agent; returns the removed record."""
        user_id = limits.ident(user_id, "user_id")
        return self._write(
            caller, op_id, "livechat.remove_agent", {"user_id": user_id},
            _on_user(caller, user_id, lambda tx: livechat.remove_agent(tx.conn, user_id)),
        )

    def livechat_set_agent_status(
        self, caller: Principal, user_id: str, status: str, *, op_id: str | None = None
    ) -> Agent:
        """`available` or `not-available`."""
        user_id = limits.ident(user_id, "user_id")
        return self._write(
            caller, op_id, "livechat.set_agent_status", {"user_id": user_id, "status": status},
            _on_user(caller, user_id, lambda tx: _then_dispatch(
                tx, user_id, livechat.set_agent_status(tx.conn, user_id, status))),
        )

    def livechat_add_department_agent(
        self, caller: Principal, department: str, user_id: str, *, op_id: str | None = None
    ) -> Department:
        """Put an agent into a department (by id or name); idempotent."""
        user_id = limits.ident(user_id, "user_id")
        return self._write(
            caller, op_id, "livechat.add_department_agent",
            {"department": department, "user_id": user_id},
            _on_user(caller, user_id, lambda tx: _then_dispatch(
                tx, user_id, livechat.add_department_agent(tx.conn, department, user_id))),
        )

    def livechat_remove_department_agent(
        self, caller: Principal, department: str, user_id: str, *, op_id: str | None = None
    ) -> Department:
        """Take an agent out of a department; idempotent."""
        user_id = limits.ident(user_id, "user_id")
        return self._write(
            caller, op_id, "livechat.remove_department_agent",
            {"department": department, "user_id": user_id},
            _on_user(caller, user_id,
                     lambda tx: livechat.remove_department_agent(tx.conn, department, user_id)),
        )

    def livechat_get_department(self, caller: Principal, department: str) -> Department:
        """A department by id, else by name (case-insensitive). NotFound."""
        with self.db.read() as c:
            return livechat.get_department(c, department)

    def livechat_list_departments(self, caller: Principal) -> list[Department]:
        """Every department, by name (at most 500)."""
        with self.db.read() as c:
            return livechat.list_departments(c)

    def set_agent_status(self, user_id: str, status: str) -> Agent:
        """An agent sets its own status (console / demo; not an app action)."""
        return self.livechat_set_agent_status(Operator(user_id), user_id, status)

    def livechat_get_agent(self, caller: Principal, user_id: str) -> Agent:
        """One agent by user id; NotFound for an unknown user or one who is no agent. Callers
        ask for the one they mean: `list_agents` stops at 500 by username, and whoever sorts
        after that is in no scan of it."""
        with self.db.read() as c:
            return livechat.get_agent(c, user_id)

    def list_agents(self) -> list[Agent]:
        """Every agent (at most 500, by username)."""
        with self.db.read() as c:
            return livechat.list_agents(c)

    def add_department(self, name: str, agent_ids: Sequence[str] = ()) -> Department:
        """Create a department with these agents (operator action)."""
        ids = tuple(limits.ident(a, "agent id") for a in agent_ids)
        return self._write(
            SYSTEM, None, "livechat.add_department", {},
            lambda tx: livechat.create_department(tx.conn, tx.now, name, ids),
        )

    def add_department_agent(self, department: str, user_id: str) -> Department:
        """Put an agent in a department (operator action; idempotent)."""
        return self._write(
            SYSTEM, None, "livechat.add_department_agent", {},
            lambda tx: _then_dispatch(
                tx, user_id, livechat.add_department_agent(tx.conn, department, user_id)),
        )

    def list_departments(self) -> list[Department]:
        """Every department."""
        with self.db.read() as c:
            return livechat.list_departments(c)


_R = TypeVar("_R")
# The roles that let their holder post under another name on this server (`impersonation`).
_IMPERSONATING_ROLES = frozenset(
    r for p in impersonation.IMPERSONATION_POWERS for r in PERMISSIONS[p])


def _held(username: str, app_id: str) -> str:
    """Why app `app_id` cannot get its own user, and what the operator can do about it."""
    return (f"the username {username!r} is reserved for the own user of app {app_id!r}, but "
            "another user holds it (made by an operator, or before apps were refused such "
            "names): remove that user (REST users.delete), then try again")


def _on_user(caller: Principal, user_id: str, fn: Callable[[Tx], _R]) -> Callable[[Tx], _R]:
    """`fn`, run once an app's call is checked not to name another app's own user
    (`users.check_not_another_apps_user`); an operator's call as it is."""
    if not isinstance(caller, Caller):
        return fn

    def checked(tx: Tx) -> _R:
        users.check_not_another_apps_user(tx.conn, user_id, caller.app_user_id)
        return fn(tx)
    return checked


def _deactivation(tx: Tx, caller: Principal, user_id: str) -> bool:
    """False (the flag a deactivation writes) once an app's deactivation of `user_id` is
    checked: never a privileged user or another app's own user (`check_app_may_deactivate`)."""
    if isinstance(caller, Caller):
        users.check_app_may_deactivate(tx.conn, user_id, caller.app_user_id)
    return False


def _then_dispatch(tx: Tx, user_id: str, result: _R) -> _R:
    """After a change that may have made `user_id` a routable agent, route the queue it can
    serve in the same transaction (Rocket.Chat routes waiting inquiries once an agent is
    available; a room must not wait for the next visitor to be noticed)."""
    rooms.dispatch_queue(tx, user_id)
    return result
