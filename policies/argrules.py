"""Argument rules the chat server applies to an app's users and rooms, shared with the author
harness.

The embedded server checks these before its transaction opens (`host/server/limits.py`,
`host/server/users.py`, which raise them as the server's `InvalidArgument`); the app-author
harness (`sandbox/harness_server.py`, which may import nothing from `host`) applies this same
copy, so a username the host refuses is refused in an author's test with the same words. Pure:
each check returns the value or raises `ArgumentProblem` holding the app-facing message.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping


class ArgumentProblem(ValueError):
    """A malformed or oversized argument; the message is what the app is told."""


# Patterns are applied with `fullmatch` and end in \Z, never `$` (which also matches before a
# final newline: "support\n" passed as a username). Guards: a name that is not what it shows.
# Usernames appear in mentions, URLs and logs: a short, unambiguous ASCII alphabet.
USERNAME_RE = re.compile(r"[A-Za-z0-9._-]{3,64}\Z")
# Display names are free text but bounded (rendered in every client list).
MAX_NAME = 128
# Emails: a basic syntax check only (deliverability is not the server's business), RFC 5321 cap.
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}\Z")
MAX_EMAIL = 254
# Custom field keys become lookup keys (and REST JSON keys): identifier-like only.
FIELD_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
# A custom field value is a string capped at 1 KiB: bounds rows, index entries and payloads.
MAX_FIELD_VALUE = 1024
# Custom fields per user / visitor / room: bounds the per-record fan-out in events and REST.
MAX_FIELDS = 50
# Close comments are shown to people: kept short. Avatar URLs are shown to visitors: bounded.
MAX_COMMENT = 1024
MAX_URL = 1024
# Usernames starting with this (in any case) are the host's: each install's own user is
# `app.<app_id>`. A user an app made there would take the name another app's install needs.
APP_USER_PREFIX = "app."


def text(value: object, what: str, max_len: int, *, min_len: int = 1) -> str:
    """A string of `min_len..max_len` characters."""
    if not isinstance(value, str):
        raise ArgumentProblem(f"{what} must be a string")
    if not min_len <= len(value) <= max_len:
        raise ArgumentProblem(
            f"{what} must be {min_len}..{max_len} characters (got {len(value)})")
    return value


def username(value: object) -> str:
    """A username: 3..64 characters of [A-Za-z0-9._-]."""
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value):
        raise ArgumentProblem(
            "username must be 3..64 characters of letters, digits, '.', '_', '-'")
    return value


def not_reserved(value: str) -> str:
    """`value` unless it lies in the namespace reserved for apps' own users (casefolded, as
    usernames are unique). For an app's creations only."""
    if value.casefold().startswith(APP_USER_PREFIX):
        raise ArgumentProblem(
            f"usernames starting with {APP_USER_PREFIX!r} are reserved for the apps' own users "
            "(each install's user is app.<app id>): choose another username")
    return value


# Characters that reorder or break what a name shows where the chat server displays it (its
# UI, a visitor's widget, a transcript), out of the host's inert rendering: the bidirectional
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069: "Trojan Source") and the
# line and paragraph separators. Guards: an app's user, agent or message alias shown as a name
# it is not ("\u202enimda" displays as "admin"). Joiners (ZWJ, ZWNJ) stay: scripts and emoji
# need them; right-to-left names need none of these.
REORDERING = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def display_problem(s: str) -> str | None:
    """Why `s` cannot be a displayed name (a control character, or one of `REORDERING`);
    None when it can."""
    for c in s:
        if unicodedata.category(c) == "Cc":
            return "must not contain control characters"
        if c in REORDERING:
            return (f"must not contain U+{ord(c):04X} (bidirectional controls and line "
                    "separators change how the name reads where it is shown)")
    return None


def name(value: object, what: str = "name") -> str:
    """A display name (1..128 characters, no control character, no `REORDERING` one)."""
    s = text(value, what, MAX_NAME)
    problem = display_problem(s)
    if problem is not None:
        raise ArgumentProblem(f"{what} {problem}")
    return s


def url(value: object, what: str) -> str:
    """An absolute http(s) URL with no whitespace (shown to visitors as an avatar: no
    javascript: or data:, nothing a client might split)."""
    s = text(value, what, MAX_URL)
    if not (s.startswith("https://") or s.startswith("http://")) or any(c.isspace() for c in s):
        raise ArgumentProblem(f"{what} must be an http(s) URL without spaces")
    return s


def email(value: object) -> str:
    """An email address with a basic shape check."""
    s = text(value, "email", MAX_EMAIL, min_len=3)
    if not EMAIL_RE.fullmatch(s):
        raise ArgumentProblem("email is not a valid address")
    return s


def field_key(value: object) -> str:
    """A custom field key: a letter, then at most 63 letters, digits or '_'."""
    if not isinstance(value, str) or not FIELD_KEY_RE.fullmatch(value):
        raise ArgumentProblem(
            f"invalid custom field key {str(value)[:70]!r}: use a letter then letters, "
            "digits or '_' (at most 64)"
        )
    return value


def field_value(value: object, key: str) -> str:
    """A custom field value: a string of at most 1 KiB (UTF-8)."""
    if not isinstance(value, str):
        raise ArgumentProblem(f"custom field {key!r} must be a string")
    if len(value.encode("utf-8")) > MAX_FIELD_VALUE:
        raise ArgumentProblem(f"custom field {key!r} is longer than {MAX_FIELD_VALUE} bytes")
    return value


def fields(value: object, *, allow_delete: bool = False) -> dict[str, str | None]:
    """A custom field mapping; with `allow_delete`, a None value means 'remove this key'."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ArgumentProblem("custom fields must be an object of string values")
    if len(value) > MAX_FIELDS:
        raise ArgumentProblem(f"at most {MAX_FIELDS} custom fields")
    out: dict[str, str | None] = {}
    for k, v in value.items():
        k = field_key(k)
        out[k] = None if (v is None and allow_delete) else field_value(v, k)
    return out
