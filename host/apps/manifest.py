"""The app manifest (`app.toml`): what an app is, what it asks for, and why.

The manifest is hostile input: it is parsed with `tomllib`, then validated by pydantic models with
`extra="forbid"` and strict types, so a typo'd key or a string where an int belongs is an error
rather than a silently ignored field. Every string has a length cap so a manifest cannot flood
the disclosure table the operator reads.

Example:

    id = "agent-sync"
    name = "Agent Sync"
    version = "1.0.0"
    author = "Acme Support Tools"
    api = ">=1,<2"
    entry = "main:AgentSync"
    events = ["livechat.room_started"]

    [[permission]]
    name = "livechat.read"
    reason = "Reads the room that just started to find the visitor's account."

    [[setting]]
    key = "crm_token"
    type = "secret"
    label = "CRM API token"
"""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.argrules import display_problem
from policies.tomlkeys import MAX_KEY_DOTS, deepest_key
from policies.vocabulary import EVENTS, PERMISSIONS

# The Stockade app-API version this host implements. A manifest's `api` range must contain it.
HOST_API_VERSION = 1

MANIFEST_NAME = "app.toml"

# Caps on manifest text: they guard the operator's disclosure table (and the host's memory)
# against a manifest that tries to bury a permission under pages of text.
MAX_MANIFEST_BYTES = 64 * 1024
MAX_NAME = 80
MAX_AUTHOR = 120
MAX_REASON = 500
MAX_DESCRIPTION = 2000
MAX_SETTINGS = 32
MAX_OPTIONS = 64
MAX_SETTING_VALUE = 4096
# An int setting has at most this many digits, so every such value fits a signed 64-bit
# integer (2**63 - 1 has 19 digits). Guards the app's start: the frames that carry its settings
# to its child (msgspec, `sandbox/frames.py`) cannot encode an integer past 64 bits, so a longer
# value would be stored and then keep the app from loading.
MAX_INT_DIGITS = 18

APP_ID_RE = r"^[a-z][a-z0-9-]{1,39}$"
MODULE_RE = r"^[a-z][a-z0-9_]{0,39}$"  # same rule as sandbox/loader.py
CLASS_RE = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
# semver-ish: MAJOR.MINOR.PATCH with an optional pre-release tag.
_NUM = r"(0|[1-9][0-9]{0,5})"
VERSION_RE = rf"^{_NUM}\.{_NUM}\.{_NUM}(-[0-9A-Za-z.]{{1,32}})?$"
SETTING_KEY_RE = r"^[a-z][a-z0-9_]{0,39}$"
CONTENT_HASH_RE = r"^sha256:[0-9a-f]{64}$"
_API_PART_RE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([0-9]{1,4})\s*$")

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

SettingType = Literal["string", "int", "bool", "select", "secret"]
SettingValue = str | int | bool


class ManifestError(ValueError):
    """The manifest is missing, not TOML, or does not validate; the message says what to fix."""


# Permissions whose arguments name roles, and so may declare them in the manifest.
ROLE_PERMISSIONS = ("roles.assign", "users.create")
MAX_DECLARED_ROLES = 20  # bounds the disclosure and the per-call membership check
MAX_AGENT_DEPARTMENTS = 20  # bounds the disclosure and the host's work at enable


class Permission(BaseModel):
    """One permission the app asks for, with the reason the operator will read."""

    model_config = _STRICT

    name: str
    reason: Annotated[str, Field(min_length=10, max_length=MAX_REASON)]
    # For roles.assign and users.create: the roles the app will assign. Declared roles narrow the
    # grant (the gate refuses others) and consent refuses any admin-class role outright.
    roles: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=MAX_DECLARED_ROLES)
    # For livechat.agents: "my app user is a livechat agent (in these departments)". Shown in
    # the disclosure; the host does it at enable when livechat.agents is granted, so an
    # operator never has to make the proxy pattern's app user an agent by raw REST calls.
    app_user_agent: bool = False
    departments: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=MAX_AGENT_DEPARTMENTS)

    @model_validator(mode="after")
    def _known(self) -> Permission:
        if self.name not in PERMISSIONS:
            known = ", ".join(sorted(PERMISSIONS))
            raise ValueError(f"unknown permission {self.name[:60]!r}; known: {known}")
        if self.roles is not None and self.name not in ROLE_PERMISSIONS:
            raise ValueError(f"`roles` can only be declared on {' and '.join(ROLE_PERMISSIONS)}")
        if (self.app_user_agent or self.departments) and self.name != "livechat.agents":
            raise ValueError("`app_user_agent` and `departments` can only be declared on "
                             "livechat.agents")
        if self.departments and not self.app_user_agent:
            raise ValueError("`departments` needs `app_user_agent = true`")
        return self


class Setting(BaseModel):
    """A typed setting the operator fills in (`stockade app settings`)."""

    model_config = _STRICT

    key: Annotated[str, Field(pattern=SETTING_KEY_RE)]
    type: SettingType
    label: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    description: Annotated[str, Field(max_length=MAX_REASON)] = ""
    required: bool = False
    default: SettingValue | None = None
    options: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_NAME)]],
        Field(max_length=MAX_OPTIONS),
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _typed(self) -> Setting:
        if self.type == "select":
            if not self.options:
                raise ValueError(f"setting {self.key!r}: a select needs `options`")
            if len(set(self.options)) != len(self.options):
                raise ValueError(f"setting {self.key!r}: duplicate options")
        elif self.options:
            raise ValueError(f"setting {self.key!r}: only a select may have `options`")
        if self.type == "secret" and self.default is not None:
            # A default secret would ship inside the package for anyone to read.
            raise ValueError(f"setting {self.key!r}: a secret may not have a default")
        if self.default is not None:
            coerce_setting(self, self.default)
        return self

    @property
    def secret(self) -> bool:
        return self.type == "secret"


def coerce_setting(setting: Setting, value: object) -> SettingValue:
    """Check `value` against the setting's type; CLI strings are parsed. Raises ValueError."""
    key = setting.key
    if setting.required and isinstance(value, str) and not value.strip():
        raise ValueError(f"setting {key!r} is required: an empty value is refused")
    if setting.type == "int":
        if isinstance(value, bool):
            raise ValueError(f"setting {key!r} is an int, got a bool")
        # The same bound for an int however it comes (the manifest's `default`, a JSON
        # number): the operator could not type a longer one, nor could its child receive it.
        if isinstance(value, int) and abs(value) < 10 ** MAX_INT_DIGITS:
            return value
        digits = re.fullmatch(r"-?([0-9]+)", value.strip()) if isinstance(value, str) else None
        if digits is not None and len(digits.group(1)) <= MAX_INT_DIGITS:
            return int(digits.group(0))
        if digits is not None or isinstance(value, int):
            # an integer, but past the bound: say the bound, not "integer"
            raise ValueError(f"setting {key!r} is too large: an integer of at most "
                             f"{MAX_INT_DIGITS} digits (a 64-bit integer)")
        raise ValueError(f"setting {key!r} must be an integer")
    if setting.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise ValueError(f"setting {key!r} must be true or false")
    if not isinstance(value, str):
        raise ValueError(f"setting {key!r} must be a string")
    if len(value) > MAX_SETTING_VALUE:
        raise ValueError(f"setting {key!r} is longer than {MAX_SETTING_VALUE} characters")
    if setting.type == "select" and value not in setting.options:
        raise ValueError(f"setting {key!r} must be one of: {', '.join(setting.options)}")
    return value


def empties_setting(setting: Setting, value: object) -> bool:
    """True when `value` (the operator's text) empties an optional setting: blank, of any type.
    Emptied means "not set by the operator": the setting takes what a new install gives one no
    one set (`emptied_value`), never an empty string nor a type's zero. A required one is never
    emptied (`coerce_setting` refuses it)."""
    return not setting.required and isinstance(value, str) and not value.strip()


def emptied_value(setting: Setting) -> SettingValue | None:
    """What an emptied optional setting holds: the manifest's default, as a new install (and an
    update, for a key not set) gives it; None when there is none, and then the key is removed,
    so the app sees it as an optional setting no one set (absent from `ctx.settings`)."""
    return setting.default


_BOOL_WORDS = {"true": True, "yes": True, "1": True, "on": True,
               "false": False, "no": False, "0": False, "off": False}


class Manifest(BaseModel):
    """A validated `app.toml`."""

    model_config = _STRICT

    id: Annotated[str, Field(pattern=APP_ID_RE)]
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    version: Annotated[str, Field(pattern=VERSION_RE)]
    author: Annotated[str, Field(min_length=1, max_length=MAX_AUTHOR)]
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""
    api: Annotated[str, Field(min_length=1, max_length=40)]
    entry: Annotated[str, Field(max_length=110)]
    icon: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}\.png$")] | None = None
    events: Annotated[list[str], Field(max_length=len(EVENTS))] = Field(default_factory=list)
    permission: Annotated[list[Permission], Field(max_length=len(PERMISSIONS))] = Field(
        default_factory=list
    )
    setting: Annotated[list[Setting], Field(max_length=MAX_SETTINGS)] = Field(
        default_factory=list
    )
    # Recorded by `stockade app package`; absent in an author's working folder.
    content_hash: Annotated[str, Field(pattern=CONTENT_HASH_RE)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Manifest:
        lo, hi = parse_api_range(self.api)
        if not (lo <= HOST_API_VERSION < hi):
            raise ValueError(
                f"api {self.api!r} does not include this host's app-API version "
                f"{HOST_API_VERSION}; build the app against api \">=1,<2\""
            )
        self.entry_parts()  # raises on a malformed entry
        # The name becomes the app user's display name on the chat server, where the host's
        # inert rendering does not reach: what the server's display names refuse (control
        # characters, bidirectional controls: `argrules.display_problem`) is refused here, so
        # an install fails as bad input, not there.
        problem = display_problem(self.name)
        if problem is not None:
            raise ValueError(f"name {problem} (it becomes the app user's display name)")
        names = [p.name for p in self.permission]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"permission listed twice: {', '.join(dupes)}")
        if len(set(self.events)) != len(self.events):
            raise ValueError("an event is listed twice in `events`")
        for ev in self.events:
            spec = EVENTS.get(ev)
            if spec is None:
                raise ValueError(f"unknown event {ev[:60]!r}; known: {', '.join(sorted(EVENTS))}")
            missing = [p for p in spec.needs if p not in names]
            if missing:
                raise ValueError(
                    f"event {ev!r} needs permission(s) {', '.join(missing)}; "
                    "add a [[permission]] entry for each"
                )
        keys = [s.key for s in self.setting]
        if len(set(keys)) != len(keys):
            raise ValueError("a setting key is listed twice")
        return self

    def entry_parts(self) -> tuple[str, str]:
        """(`module`, `Class`) from `entry = "module:Class"`."""
        module, sep, cls = self.entry.partition(":")
        if not sep or not re.fullmatch(MODULE_RE, module) or not re.fullmatch(CLASS_RE, cls):
            raise ValueError(
                f"entry {self.entry[:110]!r} must look like \"main:MyApp\" "
                "(a top-level module name, a colon, a class name)"
            )
        return module, cls

    @property
    def asked(self) -> frozenset[str]:
        """The permissions this manifest asks for."""
        return frozenset(p.name for p in self.permission)

    def declared_roles(self, permission: str) -> frozenset[str] | None:
        """The roles declared on `permission`, or None when it declares none (no narrowing)."""
        for p in self.permission:
            if p.name == permission and p.roles is not None:
                return frozenset(p.roles)
        return None

    def app_user_agent(self) -> tuple[str, ...] | None:
        """The departments the app user is declared an agent in (() for none), or None when
        the manifest does not declare its app user an agent."""
        for p in self.permission:
            if p.name == "livechat.agents" and p.app_user_agent:
                return tuple(p.departments)
        return None

    def reason(self, permission: str) -> str:
        for p in self.permission:
            if p.name == permission:
                return p.reason
        return ""

    def setting_named(self, key: str) -> Setting | None:
        for s in self.setting:
            if s.key == key:
                return s
        return None

    @property
    def secret_keys(self) -> frozenset[str]:
        return frozenset(s.key for s in self.setting if s.secret)

    def canonical(self) -> dict[str, Any]:
        """The manifest as data, without the recorded content hash (what the hashes cover)."""
        return self.model_dump(mode="json", exclude={"content_hash"})

    def manifest_hash(self) -> str:
        """sha256 of the canonical manifest; bound into the consent record."""
        return "sha256:" + hashlib.sha256(canonical_json(self.canonical())).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) for hashing and signing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_api_range(spec: str) -> tuple[int, int]:
    """Parse `">=1,<2"` into a half-open integer range [lo, hi). Raises ValueError."""
    lo, hi = 0, 10_000
    parts = spec.split(",")
    if len(parts) > 4:
        raise ValueError(f"api range {spec!r} has too many parts")
    for part in parts:
        m = _API_PART_RE.fullmatch(part)
        if not m:
            raise ValueError(f"api range {spec!r} must look like \">=1,<2\"")
        op, n = m.group(1), int(m.group(2))
        if op == ">=":
            lo = max(lo, n)
        elif op == ">":
            lo = max(lo, n + 1)
        elif op == "<":
            hi = min(hi, n)
        elif op == "<=":
            hi = min(hi, n + 1)
        else:
            lo, hi = max(lo, n), min(hi, n + 1)
    if lo >= hi:
        raise ValueError(f"api range {spec!r} is empty")
    return lo, hi


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate `app.toml` bytes; raises ManifestError with one readable message."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
        deep = deepest_key(text, MAX_KEY_DOTS)
        if deep is not None:
            raise ManifestError(f"{MANIFEST_NAME} line {deep[0]}: a dotted key or table header "
                                f"nests deeper than {MAX_KEY_DOTS} levels")
        raw = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not valid TOML: {exc}") from exc
    except RecursionError:
        # tomllib recurses once per nested array or table: a hostile manifest nests thousands.
        raise ManifestError(f"{MANIFEST_NAME} nests values too deeply") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"{MANIFEST_NAME} is invalid: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    errs = exc.errors(include_url=False, include_input=False)
    if not errs:
        return str(exc)
    first = errs[0]
    loc = ".".join(str(x) for x in first.get("loc", ()))
    msg = str(first.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    return f"{loc + ': ' if loc else ''}{msg}{more}"
