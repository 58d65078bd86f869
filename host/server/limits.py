"""Size limits and argument validators. Every check here runs before a transaction opens, so a
bad argument never leaves anything half-written.

Each limit names what it guards: mostly the database and every consumer downstream (event
payloads cross the wire to app children, REST bodies reach HTTP clients) from unbounded input
chosen by an untrusted app.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from host.server.errors import InvalidArgument
from policies import argrules

# The username, name, email, custom field, close comment and avatar URL rules live in
# `policies/argrules.py`, one copy the author harness applies too; here they raise the server's
# InvalidArgument. Their limits are re-exported for this module's readers.
from policies.argrules import EMAIL_RE as EMAIL_RE
from policies.argrules import FIELD_KEY_RE as FIELD_KEY_RE
from policies.argrules import MAX_COMMENT as MAX_COMMENT
from policies.argrules import MAX_EMAIL as MAX_EMAIL
from policies.argrules import MAX_FIELD_VALUE as MAX_FIELD_VALUE
from policies.argrules import MAX_FIELDS as MAX_FIELDS
from policies.argrules import MAX_NAME as MAX_NAME
from policies.argrules import MAX_URL as MAX_URL
from policies.argrules import USERNAME_RE as USERNAME_RE
from policies.argrules import ArgumentProblem

# Every pattern below is applied with `fullmatch` and ends in \Z, never `$`: under `re.match`,
# `$` also matches before a final newline, so "support\n" passed as a username, was unique
# from "support" and displayed as it. Guards: a name, role, key or token that is not what it
# shows.

# Roles per user: bounds the role join and the size of every user record.
MAX_ROLES_PER_USER = 20
ROLE_RE = re.compile(r"[a-z][a-z0-9-]{0,63}\Z")
# Message text: 8 KiB bounds the message table and every message.sent payload.
MAX_MESSAGE_TEXT = 8192
# Visitor tokens are opaque client-chosen strings (widget sessions).
TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{8,128}\Z")
# Department names are shown in routing UIs.
MAX_DEPARTMENT_NAME = 64
# List reads return at most this many rows: an app cannot make the server materialise a table.
MAX_LIST = 500
DEFAULT_MESSAGES_LIMIT = 50
# Ids are server-minted; anything longer than this cannot be one and is refused early.
MAX_ID = 64
# op_ids come from the host; capped so the ops table stays small per row.
MAX_OP_ID = 128

USER_TYPES = frozenset({"user", "bot", "app"})
AGENT_STATUSES = frozenset({"available", "not-available"})


def text(value: object, what: str, max_len: int, *, min_len: int = 1) -> str:
    """A string of `min_len..max_len` characters, or InvalidArgument naming `what`."""
    try:
        return argrules.text(value, what, max_len, min_len=min_len)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def ident(value: object, what: str) -> str:
    """A server id (opaque, bounded); unknown ids are NotFound later, malformed ones here."""
    return text(value, what, MAX_ID)


def username(value: object) -> str:
    """A username: 3..64 characters of [A-Za-z0-9._-]."""
    try:
        return argrules.username(value)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def name(value: object, what: str = "name") -> str:
    """A display name (1..128 characters, no control characters)."""
    try:
        return argrules.name(value, what)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def email(value: object) -> str:
    """An email address with a basic shape check."""
    try:
        return argrules.email(value)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def role_name(value: object) -> str:
    """A role name (lowercase identifier with dashes)."""
    if not isinstance(value, str) or not ROLE_RE.fullmatch(value):
        raise InvalidArgument("role must be a lowercase name of letters, digits and '-'")
    return value


def roles(value: object) -> tuple[str, ...]:
    """A list of distinct role names, at most MAX_ROLES_PER_USER."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidArgument("roles must be a list of role names")
    if len(value) > MAX_ROLES_PER_USER:
        raise InvalidArgument(f"at most {MAX_ROLES_PER_USER} roles per user")
    out: list[str] = []
    for r in value:
        r = role_name(r)
        if r not in out:
            out.append(r)
    return tuple(out)


def field_key(value: object) -> str:
    """A custom field key: a letter, then at most 63 letters, digits or '_'."""
    try:
        return argrules.field_key(value)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def field_value(value: object, key: str) -> str:
    """A custom field value: a string of at most 1 KiB (UTF-8)."""
    try:
        return argrules.field_value(value, key)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def fields(value: object, *, allow_delete: bool = False) -> dict[str, str | None]:
    """A custom field mapping; with `allow_delete`, a None value means 'remove this key'."""
    try:
        return argrules.fields(value, allow_delete=allow_delete)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def string_fields(value: object) -> dict[str, str]:
    """Custom fields where every value is present (no deletions)."""
    return {k: v for k, v in fields(value).items() if v is not None}


def message_text(value: object) -> str:
    """Message text: 1 character .. 8 KiB (UTF-8)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("text must be a non-empty string")
    if len(value.encode("utf-8")) > MAX_MESSAGE_TEXT:
        raise InvalidArgument(f"text is longer than {MAX_MESSAGE_TEXT} bytes")
    return value


def url(value: object, what: str) -> str:
    """An absolute http(s) URL (shown to visitors as an avatar: no javascript: or data:)."""
    try:
        return argrules.url(value, what)
    except ArgumentProblem as exc:
        raise InvalidArgument(str(exc)) from None


def limit(value: object, default: int) -> int:
    """A list size: 1..MAX_LIST."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIST:
        raise InvalidArgument(f"limit must be an integer 1..{MAX_LIST}")
    return value


def op_id(value: object) -> str:
    """An op_id chosen by the host (bounded)."""
    return text(value, "op_id", MAX_OP_ID)


def require_keys(args: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    """Refuse unknown keys (a typo must not silently become a no-op)."""
    extra = set(args) - allowed
    if extra:
        raise InvalidArgument(f"unknown {what} field(s): {', '.join(sorted(extra))[:200]}")
