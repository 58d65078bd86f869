"""REST routes that sign in, sign out and mint tokens, and the user list (Rocket.Chat's shapes).

`login` answers `{"status": "success", "data": {"authToken", "userId", "me"}}` as Rocket.Chat
documents; a wrong name or password, or a name past the failed-attempt limit, is a 401 with
Rocket.Chat's `{"status": "error", ...}` body (`host/server/rest_errors.py`). None of these is
reachable by an app through `ctx.rest` (`host/gate/rest_routes.py` lists them as never).
"""
from __future__ import annotations

from typing import Any

from host.server import auth, users
from host.server import rest_shapes as rs
from host.server.errors import InvalidArgument, ServerError
from host.server.personal_tokens import mint
from host.server.rest_routes import MANAGE, Ctx, user_ref, user_view


class SignInRefused(ServerError):
    """A name and password that do not match an active user (or a name past the limit)."""

    code = "login_failed"
    http_status = 401


class SignInBlocked(SignInRefused):
    code = "login_blocked"


# One table of recent failures per process, keyed by store and name (auth.Failures).
FAILURES = auth.Failures()


def login(ctx: Ctx) -> dict[str, Any]:
    """POST login {user | username, password}."""
    who = ctx.body.get("user", ctx.body.get("username"))
    password = ctx.body.get("password")
    if not isinstance(who, str) or not who or not isinstance(password, str):
        raise InvalidArgument("give user (a user name or e-mail address) and password")
    key_db = ctx.server.db
    try:
        found = auth.login(key_db, FAILURES, who, password, ctx.server.clock.now())
    except auth.LoginBlocked:
        raise SignInBlocked("too many failed sign-ins for this user; try again later") from None
    if found is None:
        raise SignInRefused("Unauthorized")
    user_id, token = found
    me = rs.user(ctx.server.users_get(ctx.principal, user_id))
    return {"status": "success", "data": {"authToken": token, "userId": user_id, "me": me}}


def logout(ctx: Ctx) -> dict[str, Any]:
    """POST logout: revokes the token that made this request."""
    assert ctx.identity is not None
    if ctx.auth_token is None or not auth.logout(ctx.server.db, ctx.identity["id"],
                                                 ctx.auth_token):
        raise InvalidArgument("this request carries no token of yours to log out")
    return {"status": "success", "data": {"message": "You've been logged out!"}}


def generate_personal_token(ctx: Ctx) -> dict[str, Any]:
    """POST users.generatePersonalAccessToken {tokenName}: a token for the caller itself."""
    assert ctx.identity is not None
    name = ctx.b("tokenName")
    return {"token": mint(ctx.server.db, ctx.identity["id"], name, ctx.server.clock.now())}


def create_token(ctx: Ctx) -> dict[str, Any]:
    """POST users.createToken {userId | username}: an admin mints a sign-in for a user."""
    u = user_ref(ctx)
    if not u["active"]:
        raise InvalidArgument("the user is deactivated")
    token = mint(ctx.server.db, u["id"], "createToken", ctx.server.clock.now(), kind="login")
    return {"data": {"userId": u["id"], "authToken": token}}


def users_list(ctx: Ctx) -> dict[str, Any]:
    """GET users.list ?count=&offset=: every user, by user name."""
    offset, count = ctx.page_window()
    with ctx.server.db.read() as c:
        found, total = users.page(c, offset, count)
    shown = [user_view(ctx, u) for u in found]
    return {"users": shown, "count": len(shown), "offset": offset, "total": total}


def set_password(ctx: Ctx, user_id: str, password: Any) -> None:
    """A password sent with users.create / users.update (admins only reach those)."""
    if password is None:
        return
    if not isinstance(password, str):
        raise InvalidArgument("password must be a string")
    auth.set_password(ctx.server.db, user_id, password)


__all__ = ["FAILURES", "MANAGE", "SignInBlocked", "SignInRefused", "create_token",
           "generate_personal_token", "login", "logout", "set_password", "users_list"]
