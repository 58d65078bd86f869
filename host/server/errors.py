"""Errors the server raises. Each has a stable `code` that the gate maps 1:1 onto the wire codes
(`sandbox/errors.py`) and the REST layer maps onto an HTTP status.

Nothing else escapes a server operation on purpose: a `sqlite3` error that does escape is a bug
and the host reports it as `internal`.
"""
from __future__ import annotations


class ServerError(Exception):
    """Base of every error a server operation raises on purpose."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServerError):
    """An id, username, role, department, visitor or room that does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(ServerError):
    """The state forbids it: duplicate username, room already closed, op_id reused, ..."""

    code = "conflict"
    http_status = 409


class InvalidArgument(ServerError):
    """A malformed or oversized argument. Raised before anything is written."""

    code = "invalid_argument"
    http_status = 400


class Forbidden(ServerError):
    """The acting principal may not do this (e.g. agent display by an app that is not the
    room's serving agent, or a REST identity without the role a route needs)."""

    code = "permission_denied"
    http_status = 403


class Prevented(Conflict):
    """The pre-send hook refused a message; the message names who prevented it and why."""

    def __init__(self, message: str, prevented_by: str | None = None) -> None:
        super().__init__(message)
        self.prevented_by = prevented_by


class Unavailable(ServerError):
    """The server could not be reached or did not answer in time (a remote server: a timeout,
    a dropped connection, a 5xx or its rate limiter after the bounded retries).

    `outcome_unknown` says whether a write may have been applied anyway (the request was sent
    and no answer came back): the gate then asks `was_applied` instead of refunding, and a
    crash-safe settlement follows at the next start if even that cannot be answered.
    `nothing_applied` says the server certainly applied nothing (no attempt reached it, or its
    rate limiter refused every one before the route ran): the gate gives the call's quota
    units back, as for a refusal (a workspace that was down or rate-limiting burned an app's
    quota, call after call, for work never done)."""

    code = "timeout"
    http_status = 503

    def __init__(self, message: str, *, outcome_unknown: bool = False,
                 nothing_applied: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown
        self.nothing_applied = nothing_applied and not outcome_unknown
