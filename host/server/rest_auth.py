"""REST routes that sign in, sign out and mint tokens, and the user list (Rocket.Chat's shapes).

`login` answers `{"status": "success", "data": {"authToken", "userId", "me"}}` as Rocket.Chat
documents; a wrong name or password, or a name past the failed-attempt limit, is a 401 with
Rocket.Chat's `{"status": "error", ...}` body (`host/server/rest_errors.py`). None of these is
reachable by an app through `ctx.rest` (`policies/routes.py` lists them as never).
"""
from __future__ import annotations

import json
import os
import secrets
from typing import Any

from host.server import auth, users
from host.server import rest_access as access
from host.server import rest_shapes as rs
from host.server.errors import Forbidden, InvalidArgument, ServerError
from host.server.personal_tokens import mint, mint_named
from host.server.rest_routes import MANAGE, Ctx, user_ref, user_view


class SignInRefused(ServerError):
    """A name and password that do not match an active user (or a name past the limit)."""

    code = "login_failed"
    http_status = 401


class SignInBlocked(SignInRefused):
    code = "login_blocked"


# Rocket.Chat's environment variable naming users.createToken's shared secret (8.0+).
CREATE_TOKENS_SECRET_ENV = "CREATE_TOKENS_FOR_USERS_SECRET"  # noqa: S105 (a variable's name)

def login(ctx: Ctx) -> dict[str, Any]:
    """POST login {user | username, password}."""
    who = ctx.body.get("user", ctx.body.get("username"))
    password = ctx.body.get("password")
    if not isinstance(who, str) or not who or not isinstance(password, str):
        raise InvalidArgument("give user (a user name or e-mail address) and password")
    key_db = ctx.server.db
    try:
        found = auth.login(key_db, who, password, ctx.server.clock.now())
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
    """POST users.generatePersonalAccessToken {tokenName}: a token for the caller itself, for
    roles holding Rocket.Chat's create-personal-access-tokens (admins by default; 400
    not-authorized otherwise, as Rocket.Chat answers), one per name, a few per user
    (`personal_tokens.mint_named`). Any signed-in agent minted never-expiring tokens without
    bound before."""
    assert ctx.identity is not None
    if not access.has(ctx.identity, "create-personal-access-tokens"):
        raise Forbidden("Not Authorized")
    name = ctx.b("tokenName")
    return {"token": mint_named(ctx.server.db, ctx.identity["id"], name,
                                ctx.server.clock.now())}


def create_token(ctx: Ctx) -> dict[str, Any]:
    """POST users.createToken {userId | username, secret}: an admin mints a sign-in for a user.
    As Rocket.Chat 8+, with CREATE_TOKENS_FOR_USERS_SECRET set in the server's environment the
    body's `secret` must match it (400 error-not-authorized otherwise): the stand-in then
    refuses what a real workspace refuses, so the remote adapter's call is tested with it."""
    want = os.environ.get(CREATE_TOKENS_SECRET_ENV)
    got = ctx.body.get("secret")
    if want and not (isinstance(got, str) and
                     secrets.compare_digest(got.encode(), want.encode())):
        raise Forbidden("Not authorized")  # 400 error-not-authorized (rest_errors.py)
    u = user_ref(ctx)
    if not u["active"]:
        raise InvalidArgument("the user is deactivated")
    token = mint(ctx.server.db, u["id"], "createToken", ctx.server.clock.now(), kind="login")
    return {"data": {"userId": u["id"], "authToken": token}}


def users_list(ctx: Ctx) -> dict[str, Any]:
    """GET users.list ?count=&offset=&fields=: every user, by user name. As in Rocket.Chat,
    whose default projection leaves them out, `customFields` only when `fields` asks for them
    (`{"customFields": 1}`); `query` is not honoured (Rocket.Chat 7 ignores it too unless
    ALLOW_UNSAFE_QUERY_AND_FIELDS_API_PARAMS is set)."""
    offset, count = ctx.page_window()
    with_fields = _projection(ctx.q("fields")).get("customFields") == 1
    with ctx.server.db.read() as c:
        found, total = users.page(c, offset, count)
    shown = [user_view(ctx, u) for u in found]
    if not with_fields:
        shown = [{k: v for k, v in doc.items() if k != "customFields"} for doc in shown]
    return {"users": shown, "count": len(shown), "offset": offset, "total": total}


def _projection(raw: str | None) -> dict[str, Any]:
    """`fields`: a JSON object of field -> 1 | 0 (400 otherwise, as Rocket.Chat's parser)."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidArgument("fields must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArgument("fields must be a JSON object")
    return value


def set_password(ctx: Ctx, user_id: str, password: Any) -> None:
    """A password sent with users.create / users.update (admins only reach those)."""
    if password is None:
        return
    if not isinstance(password, str):
        raise InvalidArgument("password must be a string")
    auth.set_password(ctx.server.db, user_id, password)


__all__ = ["MANAGE", "SignInBlocked", "SignInRefused", "create_token",
           "generate_personal_token", "login", "logout", "set_password", "users_list"]
