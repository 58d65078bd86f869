"""app.toml as the author harness reads it (`sandbox/harness.py`): just enough checking to run
the app (the host validates it fully at `stockade app package` and install)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from policies.vocabulary import EVENTS, PERMISSIONS
from sandbox.harness_server import SETTING_TYPES, HarnessError

# Permissions whose arguments name roles, and so may declare them in app.toml (the host's
# manifest model refuses `roles` on any other: host/apps/manifest.py ROLE_PERMISSIONS).
ROLE_PERMISSIONS = ("roles.assign", "users.create")

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
                raise HarnessError(f"{where}: unknown permission {name!r}")
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




def unchanged_diff(version: str, grants: Iterable[str]) -> dict[str, Any]:
    """The diff the host hands `on_update` for an update that asks for nothing new
    (host/apps/appdiff.py `PermissionDiff.to_dict`)."""
    return {"old_version": version, "new_version": version, "added": [], "removed": [],
            "kept": sorted(grants), "events_added": [], "events_removed": [],
            "settings_added": [], "settings_removed": [], "publisher_changed": False,
            "roles_widened": {}, "secrets_added": [], "downgrade": False,
            "agent_widened": [], "needs_consent": False}
