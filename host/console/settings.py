"""An app's settings in the console: each one typed by the manifest, secrets never shown.

The same as `stockade app settings APP KEY=VALUE` (host/cli/app_data_cmd.py): values are coerced
by the manifest's type (`coerce_setting`), an empty required setting is refused, a secret field
left empty keeps its value, and the change is `operator.settings` naming the keys only (a value,
a secret above all, never reaches the audit chain).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from host.apps.installs import InstallRecord, InstallStore
from host.apps.manifest import coerce_setting
from host.console.install import Refused
from host.home import Home
from host.ledger.operator import audited


def rows(rec: InstallRecord) -> list[dict[str, Any]]:
    shown = rec.redacted_settings()
    return [{"key": s.key, "type": s.type, "label": s.label, "required": s.required,
             "secret": s.secret or s.key in rec.secret_keys, "options": list(s.options),
             "value": shown.get(s.key)} for s in rec.manifest.setting]


def save(home: Home, install_id: str, form: Mapping[str, str], *, actor: str) -> list[str]:
    """Apply the posted values; returns the keys changed."""
    with InstallStore(home.host_store) as store:
        rec = store.get(install_id)
        if rec is None:
            raise Refused("no such install")
        new = dict(rec.settings)
        changed: list[str] = []
        for s in rec.manifest.setting:
            raw = form.get(f"setting-{s.key}")
            secret = s.secret or s.key in rec.secret_keys
            if raw is None or (secret and raw == ""):
                continue  # not sent, or a secret left empty: keep what is stored
            if raw == "" and s.required:
                raise Refused(f"{s.key} is required: give it a value")
            try:
                value = coerce_setting(s, raw)
            except ValueError as exc:
                raise Refused(f"{s.key}: {exc}") from None
            if value != rec.settings.get(s.key):
                new[s.key] = value
                changed.append(s.key)
        if changed:
            with audited(home.host_store, "settings", actor=actor, app_id=rec.app_id,
                         install_id=rec.install_id, version=rec.version,
                         setting_keys=tuple(sorted(changed))):
                store.set_settings(rec.install_id, new, changed)
    return changed
