"""Errors an app sees. Each travels the wire as `{code, message}` and is rebuilt here by code.

A denial is never a silent `None` (DESIGN rule 3): the gate returns one of these codes and the
app-facing API raises the matching exception, whose message names the missing permission or the
rule that refused.
"""
from __future__ import annotations


class StockadeError(Exception):
    """Base of every error the app-facing API raises."""

    code = "internal"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class PermissionDenied(StockadeError):
    """The install lacks the permission, or a policy rule or guardrail refused the call."""

    code = "permission_denied"


class QuotaExceeded(StockadeError):
    """A quota window is full; the message names the quota and when a unit frees up."""

    code = "quota_exceeded"


class NotFound(StockadeError):
    code = "not_found"


class Conflict(StockadeError):
    code = "conflict"


class InvalidArgument(StockadeError):
    code = "invalid_argument"


class Timeout(StockadeError):
    code = "timeout"


class InternalError(StockadeError):
    code = "internal"


ERRORS_BY_CODE: dict[str, type[StockadeError]] = {
    cls.code: cls
    for cls in (
        PermissionDenied,
        QuotaExceeded,
        NotFound,
        Conflict,
        InvalidArgument,
        Timeout,
        InternalError,
    )
}


def outside_handler(action: str) -> InvalidArgument:
    """A bridge call made while no handler runs (the child's runtime and the harness alike):
    the host reads calls only within an event."""
    return InvalidArgument(f"{action}: bridge calls are made only while a handler runs (this "
                           "code ran after its event ended, e.g. in a generator's finally)")


def error_from_wire(code: str, message: str) -> StockadeError:
    """Rebuild an exception from a wire error; unknown codes become InternalError."""
    return ERRORS_BY_CODE.get(code, InternalError)(message)
