"""Errors the gate returns to an app. Each becomes a `{code, message}` Reply on the wire and
the matching exception in the app (sandbox/errors.py). Messages name what was missing or which
rule refused, and how to get it (DESIGN rule 3)."""
from __future__ import annotations


class GateError(Exception):
    code = "internal"
    #: The act may have had its effect before this error (an outbound request that went out,
    #: then failed): its units are kept whatever the code, never refunded as a refusal is.
    sent = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RefusalBudgetExceeded(GateError):
    """The call was refused, and the install has passed its refusal budget: the supervisor
    stops the app's child (DESIGN rule 13). The app sees the refusal's own code."""


class ServerRefused(GateError):
    """The server refused an admitted call (already audited as a refusal). `http_status` lets
    the REST bridge answer the app as the REST API would (`{status, body}`)."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(code, message)
        self.http_status = http_status


class StartRefused(Exception):
    """The host will not serve this home: a store is damaged or the audit chain is broken.

    Raised before any app runs or any call is admitted (fail closed); `hint` tells the operator
    how to recover. The CLI prints both and exits 1, with no traceback."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
