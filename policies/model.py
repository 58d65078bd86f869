"""The policy file schema (schema = 1): pydantic models, strict types, unknown keys refused.

These models check *shape* only (types, required keys, number ranges). Meaning — unknown action
names, wildcards, missing quotas, admin-class roles in allow lists — is lint's job
(`policies/lint.py`), so that a reviewer gets every finding at once with a line number instead of
the first validation error.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1

# Every integer in a policy file must fit a signed 32-bit int. Guards: TOML integers are
# arbitrary precision, so `limit = 1e400`-style values would otherwise flow into SQLite (64-bit)
# and arithmetic; a ceiling far above any sane limit costs nothing.
INT_MAX = 2**31 - 1
INT_MIN = -(2**31)

# Rule and quota ids: short, ASCII, stable. Guards: ids appear in audit records and CLI output;
# no control characters, no look-alikes, no newline forging.
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# App ids (or "*"): same alphabet as the manifest's id.
APP_PATTERN = r"^(\*|[a-z0-9][a-z0-9._-]{0,127})$"
# Short free text. Guards: descriptions end up in terminals and audit views.
MAX_TEXT = 2000
# username_pattern length. Guards: regex compile/match cost; lint also flags > 200 chars.
MAX_PATTERN = 1000

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
AppId = Annotated[str, StringConstraints(pattern=APP_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Item = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Int32 = Annotated[int, Field(ge=INT_MIN, le=INT_MAX)]


def _not_bool(v: object) -> object:
    # Literal[1] takes True (True == 1), even in strict mode: `schema = true` loaded, and fmt
    # wrote it back. The schema version is an integer.
    if isinstance(v, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return v


# `schema = 1`, the integer only.
SchemaOne = Annotated[Literal[1], BeforeValidator(_not_bool)]

WINDOW_RE = re.compile(r"^([0-9]{1,9})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> int:
    """Parse "30s" / "15m" / "1h" / "1d" into seconds; raise ValueError otherwise."""
    m = WINDOW_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"window {text!r} is not <number><s|m|h|d>, e.g. \"10m\"")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class When(_Strict):
    """Argument constraints of a rule. Each key concerns some actions only
    (`policies.concerns.CONCERNS`) and is read only for a request of one of them: in a permit
    every listed constraint *that concerns the request's action* must hold, and the others are
    ignored for it (a permit of users.create and users.deactivate with `username_pattern`
    allows any deactivation the own-users rule allows: lint STK038). An absent list allows
    nothing for the arguments it governs (see policies/README.md)."""

    user_types: list[Item] | None = None
    roles: list[Item] | None = None
    custom_field_keys: list[Item] | None = None
    any_user: bool = False
    domains: list[Item] | None = None
    allow_private: list[Item] | None = None
    rest_routes: list[Item] | None = None
    # rest.call on a route with no bridge action: the top-level body (or query) fields it may
    # carry. Absent, such a route is never allowed (a mapped route is decided by its action).
    rest_fields: list[Item] | None = None
    username_pattern: Annotated[str, StringConstraints(max_length=MAX_PATTERN)] | None = None


class Rule(_Strict):
    """One permit or forbid statement. Order among rules never matters."""

    id: Id
    effect: Literal["permit", "forbid"]
    apps: Annotated[list[AppId], Field(min_length=1)]
    actions: Annotated[list[Item], Field(min_length=1)]
    description: Text = ""
    when: When = When()


class Quota(_Strict):
    """At most `limit` calls in any sliding window of `window` (exact and durable in the host)."""

    id: Id
    apps: Annotated[list[AppId], Field(min_length=1)]
    action: Item  # an action name or "*" (every bridge call)
    limit: Int32
    window: Annotated[str, StringConstraints(max_length=16)] | None = None
    window_s: Int32 | None = None
    scope: Literal["install", "app", "workspace"] = "install"
    description: Text = ""

    @model_validator(mode="after")
    def _one_window(self) -> Quota:
        if (self.window is None) == (self.window_s is None):
            raise ValueError("give exactly one of `window` (\"10m\") or `window_s` (seconds)")
        if self.window is not None:
            parse_window(self.window)
        return self

    @property
    def seconds(self) -> int:
        """The window in seconds, whichever form the file used."""
        if self.window_s is not None:
            return self.window_s
        assert self.window is not None  # guaranteed by _one_window
        return parse_window(self.window)


class Workspace(_Strict):
    """Workspace-wide ceilings."""

    # Active users created by apps are billed seats: the operator caps them here.
    max_active_app_users: Int32 | None = None


class PolicyFile(_Strict):
    """One policy file. `schema` must be 1; anything not listed here is refused."""

    schema_version: SchemaOne = Field(alias="schema")
    name: Name
    description: Text = ""
    workspace: Workspace | None = None
    rule: list[Rule] = []
    quota: list[Quota] = []
