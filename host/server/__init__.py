"""The chat server the host's bridges reach: an embedded, SQLite-backed omnichannel server
(`EmbeddedServer`) behind the `ServerAdapter` protocol, plus its Rocket.Chat-style REST API
(`host.server.rest`)."""
from __future__ import annotations

from host.server.adapter import ACTION_METHODS, ServerAdapter
from host.server.embedded import EmbeddedServer
from host.server.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    Prevented,
    ServerError,
)
from host.server.principals import SYSTEM, Caller, Operator, Principal

__all__ = [
    "ACTION_METHODS", "SYSTEM", "Caller", "Conflict", "EmbeddedServer", "Forbidden",
    "InvalidArgument", "NotFound", "Operator", "Prevented", "Principal", "ServerAdapter",
    "ServerError",
]
