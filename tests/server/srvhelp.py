"""Helpers shared by the server tests."""
from __future__ import annotations

import itertools
from typing import Any

from host.server import Operator

# The operator acting through the server's own API (no app): what an admin's REST call is.
ADMIN = Operator(None)

_ops = itertools.count()


def op() -> str:
    """A fresh op_id."""
    return f"op-{next(_ops)}"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        self.events.append((name, payload))

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def clear(self) -> None:
        self.events.clear()
