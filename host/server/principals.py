"""Who acts on the server. The host builds these from the channel (never from a request field).

`Caller` is an app, acting through the gate: the server stamps what it creates with the app id,
sends its messages as its app user, and lets only the app whose user serves a room set that
room's agent display. `Operator` is anyone else: a REST identity, the CLI, the demo driver, an
agent at a console (`user_id`), or the system itself (`user_id=None`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """An installed app acting through a bridge."""

    app_id: str
    install_id: str
    app_user_id: str | None  # the app's own user (created at install); None if it has none


@dataclass(frozen=True)
class Operator:
    """A non-app actor: a user acting directly (REST, console), or the system (user_id=None)."""

    user_id: str | None = None


SYSTEM = Operator(None)

Principal = Caller | Operator


def app_of(p: Principal) -> str | None:
    """The app id behind a principal, if it is an app."""
    return p.app_id if isinstance(p, Caller) else None


def user_of(p: Principal) -> str | None:
    """The user id a principal acts as (an app acts as its app user)."""
    return p.app_user_id if isinstance(p, Caller) else p.user_id
