"""Helpers shared by the server tests."""
from __future__ import annotations

import itertools
from typing import Any

import httpx

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


# A REST user's password in the sign-in tests.
PASSWORD = "correct horse battery"


def rest_user(client: httpx.Client, name: str, **extra: object) -> str:
    """A user made over the REST API (by `client`, an admin's), with PASSWORD; its id."""
    r = client.post("/api/v1/users.create", json={"username": name, "name": name.title(),
                                                  "email": f"{name}@example.org",
                                                  "password": PASSWORD, **extra})
    assert r.status_code == 200, r.text
    return str(r.json()["user"]["_id"])


def rest_login(base_url: str, user: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{base_url}/api/v1/login", json={"user": user, "password": password})
