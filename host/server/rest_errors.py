"""Rocket.Chat's REST error bodies, from the server's own error codes.

Inside, every operation raises a `ServerError` with a Stockade code (`not_found`, `conflict`,
`invalid_argument`, `permission_denied`). A Rocket.Chat client expects what the official
OpenAPI definitions (RocketChat/Rocket.Chat-Open-API) document instead:

- 401: `{"status": "error", "message": "You must be logged in to do this."}` (no `success`);
- 403: `{"success": false, "error": "... [error-unauthorized]", "errorType": ...}`;
- any other refusal of a request: HTTP 400, `{"success": false, "error": "<text> [<type>]",
  "errorType": "<type>"}`, where the type names what was wrong (`invalid-params` for a
  malformed parameter, `error-invalid-user` for a user that does not exist,
  `error-field-unavailable` for a username in use...).

The table below is the one place that choice is made; the dispatcher and the `rest.call` bridge
both use it, so an app sees through `ctx.rest` exactly what a Rocket.Chat client would.
"""
from __future__ import annotations

from typing import Any

# The only 401 body Rocket.Chat sends (the OpenAPI's shared `authorizationError` response).
UNAUTHORIZED_BODY: dict[str, Any] = {"status": "error",
                                     "message": "You must be logged in to do this."}

# errorType of a `not_found` by the first segment of the route (below /api/v1/). Rocket.Chat
# answers an unknown id with 400 and one of these, never with 404 (404 is an unknown route).
_NOT_FOUND_BY_ROUTE: tuple[tuple[str, str], ...] = (
    ("users.", "error-invalid-user"),
    ("roles.", "error-invalid-user"),
    ("livechat/users/", "error-invalid-user"),
    ("livechat/agent.", "error-invalid-user"),
    ("livechat/department", "error-department-not-found"),
    ("livechat/visitor", "error-invalid-visitor"),
    ("chat.", "error-invalid-room"),
    ("channels.", "error-room-not-found"),
    ("livechat/", "error-invalid-room"),
)
# errorType of a `conflict` by route: a username or e-mail in use is "unavailable"; anything
# else the state forbids (a closed room, a reused op id) is an action not allowed.
_CONFLICT_BY_ROUTE: tuple[tuple[str, str], ...] = (
    ("users.generatePersonalAccessToken", "error-token-already-exists"),
    ("users.create", "error-field-unavailable"),
    ("users.update", "error-field-unavailable"),
)


# Refusals Rocket.Chat sends with no `errorType`, only a text (its OpenAPI examples), by code and
# route. The stand-in is this server: a refusal shaped unlike Rocket.Chat's here hid the remote
# adapter's misreading of the real one (a deleted user read as a bad argument).
BARE_REFUSALS: dict[tuple[str, str], str] = {
    ("not_found", "users.info"): "User not found.",
    ("conflict", "livechat/room.closeByUser"): "error-room-already-closed",
}


# Permission refusals Rocket.Chat answers with 400 and its own errorType (a Meteor method's
# refusal), not 403, by route: users.createToken without the right secret or permission.
_DENIED_BY_ROUTE: dict[str, str] = {
    "users.createToken": "error-not-authorized",
    "users.generatePersonalAccessToken": "not-authorized",
}


def _by_route(table: tuple[tuple[str, str], ...], path: str, default: str) -> str:
    return next((kind for prefix, kind in table if path.startswith(prefix)), default)


def error_type(code: str, path: str) -> str:
    """The Rocket.Chat errorType for a server error `code` raised by route `path`."""
    if code == "not_found":
        return _by_route(_NOT_FOUND_BY_ROUTE, path, "error-not-found")
    if code == "conflict":
        return _by_route(_CONFLICT_BY_ROUTE, path, "error-action-not-allowed")
    if code == "permission_denied":
        return "error-unauthorized"
    if code == "quota_exceeded":
        return "error-too-many-requests"
    if code == "invalid_argument":
        return "invalid-params"
    if code == "disk_full":
        return "error-disk-full"  # HTTP 503 (the dispatcher): the store could not be written
    if code == "store_unavailable":
        # HTTP 503 (`host.server.rest_unavailable`): the store is busy or cannot be reached now
        return "error-store-unavailable"
    return "error-internal"


def rc_status(code: str) -> int:
    """The HTTP status Rocket.Chat answers a refusal of this kind with."""
    if code in ("unauthorized", "login_failed", "login_blocked"):
        return 401
    if code == "permission_denied":
        return 403
    if code == "quota_exceeded":
        return 429
    return 500 if error_type(code, "") == "error-internal" else 400


def rc_error(code: str, message: str, path: str, *, status: int | None = None
             ) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for a refusal, as Rocket.Chat shapes it.

    `status` overrides the one the code implies (413 for an oversized body, 404 for an
    unknown route, 500 for the server's own failure)."""
    if code == "unauthorized":
        return 401, dict(UNAUTHORIZED_BODY)
    if code in ("login_failed", "login_blocked"):
        # Rocket.Chat's sign-in refusal: the same body whether the name or the password was
        # wrong (no user-name oracle); a blocked name says so.
        error = "error-login-blocked-for-user" if code == "login_blocked" else "Unauthorized"
        return 401, {"status": "error", "error": error, "message": message}
    bare = BARE_REFUSALS.get((code, path))
    if bare is not None:
        return status or rc_status(code), {"success": False, "error": bare}
    if code == "permission_denied" and path in _DENIED_BY_ROUTE:
        kind = _DENIED_BY_ROUTE[path]
        return status or 400, {"success": False, "error": f"{message} [{kind}]",
                               "errorType": kind}
    kind = error_type(code, path)
    body = {"success": False, "error": f"{message} [{kind}]", "errorType": kind}
    return status or rc_status(code), body
