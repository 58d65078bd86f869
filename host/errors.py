"""Errors the gate returns to an app. Each becomes a `{code, message}` Reply on the wire and
the matching exception in the app (sandbox/errors.py). Messages name what was missing or which
rule refused, and how to get it (DESIGN rule 3)."""
from __future__ import annotations


class GateError(Exception):
    code = "internal"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

