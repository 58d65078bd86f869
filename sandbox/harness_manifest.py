"""app.toml as the author harness reads it (`sandbox/harness.py`): just enough checking to run
the app (the host validates it fully at `stockade app package` and install), and every key
checked against the host's, so a mistyped one is named where the author's tests run."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from policies.vocabulary import EVENTS, PERMISSIONS
from sandbox.harness_server import SETTING_TYPES, HarnessError

# Permissions whose arguments name roles, and so may declare them in app.toml (the host's
# manifest model refuses `roles` on any other: host/apps/manifest.py ROLE_PERMISSIONS).
ROLE_PERMISSIONS = ("roles.assign", "users.create")

# The keys the host's manifest model knows (host/apps/manifest.py `Manifest`, `Permission`,
# `Setting`; a test pins them equal). A convenience, not a boundary: the host refuses any other
# key at packaging and install, so a mistyped one (`labl`, `evnets`) is named here, where the
# author's tests run, and not left to pass them or to fail on the wrong line.
MANIFEST_KEYS = frozenset({"id", "name", "version", "author", "description", "api", "entry",
                           "icon", "events", "permission", "setting", "content_hash"})
PERMISSION_KEYS = frozenset({"name", "reason", "roles", "app_user_agent", "departments"})
SETTING_KEYS = frozenset({"key", "type", "label", "description", "required", "default",
                          "options"})

# ---------------------------------------------------------------------------------------------
# The manifest, read with just enough checking to run the app (the host validates it fully).
# ---------------------------------------------------------------------------------------------


class Manifest:
    def __init__(self, raw: dict[str, Any], where: Path) -> None:
        def need(key: str) -> Any:
            if key not in raw:
                raise HarnessError(f"{where}: missing `{key}`")
            return raw[key]

        self.raw = raw
        _known_keys(raw, MANIFEST_KEYS, f"{where}: ")
        self.app_id: str = need("id")
        module, sep, cls = str(need("entry")).partition(":")
        if not sep:
            raise HarnessError(f"{where}: entry must look like \"main:MyApp\"")
        self.entry_module, self.entry_class = module, cls
        self.permissions: dict[str, str] = {}
        # permission -> the roles declared on it (they narrow the grant, as at the gate).
        self.roles: dict[str, frozenset[str]] = {}
        for p in raw.get("permission", []):
            name = p.get("name")
            if name not in PERMISSIONS:
                raise HarnessError(f"{where}: unknown permission {_quoted(name)}")
            _known_keys(p, PERMISSION_KEYS, f"{where}: permission {name!r}: ")
            if not str(p.get("reason", "")).strip():
                raise HarnessError(f"{where}: permission {name!r} needs a reason")
            self.permissions[name] = p["reason"]
            if p.get("roles") is not None:
                if name not in ROLE_PERMISSIONS:
                    raise HarnessError(f"{where}: `roles` can only be declared on "
                                       f"{' and '.join(ROLE_PERMISSIONS)}")
                self.roles[name] = frozenset(p["roles"])
        self.events: list[str] = list(raw.get("events", []))
        for ev in self.events:
            if ev not in EVENTS:
                raise HarnessError(f"{where}: unknown event {ev!r}")
            missing = [n for n in EVENTS[ev].needs if n not in self.permissions]
            if missing:
                raise HarnessError(f"{where}: event {ev!r} needs permission(s) {missing}")
        self.settings: dict[str, dict[str, Any]] = {}
        for s in raw.get("setting", []):
            _known_keys(s, SETTING_KEYS, f"{where}: setting {_quoted(s.get('key'))}: ")
            if s.get("type") not in SETTING_TYPES:
                raise HarnessError(f"{where}: setting {s.get('key')!r} has an unknown type")
            self.settings[s["key"]] = s

    def declared_roles(self, permission: str) -> frozenset[str] | None:
        """The roles declared on `permission`, or None when it declares none (no narrowing)."""
        return self.roles.get(permission)

    def setting_value(self, key: str, value: Any) -> Any:
        spec = self.settings.get(key)
        if spec is None:
            known = sorted(self.settings)
            raise HarnessError(f"unknown setting {key!r}; app.toml declares {known}")
        kind = spec["type"]
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "select": value in spec.get("options", []),
        }.get(kind, isinstance(value, str))
        if not ok:
            raise HarnessError(f"setting {key!r} ({kind}) cannot be {value!r}")
        return value



def _known_keys(table: dict[str, Any], known: frozenset[str], where: str) -> None:
    """Refuse the first key of `table` the host's model does not know, with the likeliest."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else \
                f"; known: {', '.join(sorted(known))}"
            raise HarnessError(f"{where}unknown key {_quoted(key)}{hint}")


def _quoted(value: Any) -> str:
    """Author text in a refusal: quoted, escapes shown (`repr`), one line, capped."""
    text = repr(value)
    return text if len(text) <= 62 else text[:60] + "…"


def unchanged_diff(version: str, grants: Iterable[str]) -> dict[str, Any]:
    """The diff the host hands `on_update` for an update that asks for nothing new
    (host/apps/appdiff.py `PermissionDiff.to_dict`)."""
    return {"old_version": version, "new_version": version, "added": [], "removed": [],
            "kept": sorted(grants), "events_added": [], "events_removed": [],
            "settings_added": [], "settings_removed": [], "publisher_changed": False,
            "roles_widened": {}, "secrets_added": [], "downgrade": False,
            "agent_widened": [], "needs_consent": False}
