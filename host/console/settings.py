"""An app's settings in the console: each one typed by the manifest, secrets never shown.

The same as `stockade app settings APP KEY=VALUE` (host/cli/app_data_cmd.py): values are coerced
by the manifest's type (`coerce_setting`), an empty required setting is refused, a secret field
left empty keeps its value, and the change is `operator.settings` naming the keys only (a value,
a secret above all, never reaches the audit chain).

A value that would not read as it is (control, bidirectional, zero-width characters: a
manifest's default is author text, DESIGN rule 12) is not put in its field: the page shows an
escaped copy and an empty field, and an empty field keeps the value, as for a secret, so saving
the form never stores the escaped copy in its place.

An optional setting of any type emptied is as one no one set: the manifest's default, else
unset (removed, so the app sees it absent from `ctx.settings`, as at install); an optional
select offers "not set"; a secret (or an escaped value), whose empty field keeps it, is
emptied by ticking its `clear-KEY` box.

The form posts every field, so a save once wrote back each value as the page had shown it: a
key another operator set meanwhile (`app settings` on the CLI, another console) was put back to
its old value without a word. Each field the page fills carries the value it showed (`was-KEY`);
a field posted as it was shown is not the operator's change and keeps what stands now, and one
changed over a value that changed meanwhile is refused (`Changed`, a 409), nothing saved. A
secret (or an escaped value) is never put in the page, not even as a digest someone could test
guesses against: its `was-KEY` is an HMAC under a key the console process keeps (`seal`), so a
secret typed over one another operator rotated meanwhile is refused the same way.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Mapping
from typing import Any

from host.apps.installs import InstallChanged, InstallRecord, InstallStore
from host.apps.manifest import coerce_setting, emptied_value, empties_setting
from host.console.install import Refused
from host.home import Home
from host.inert import visible
from host.ledger.operator import audited


def tame(value: object) -> bool:
    """True when the value reads as it is: nothing in it that `visible` shows as an escape."""
    text = "" if value is None else str(value)
    return visible(text, limit=sys.maxsize) == text


class Changed(Refused):
    """A setting the operator changed was changed by someone else since the page was read."""


def shown_text(value: object) -> str:
    """A value as the page puts it in its field (and in the field's `was-KEY`)."""
    return "" if value is None else str(value)


def seal(key: bytes, name: str, value: object) -> str:
    """What a hidden field carries for a value the page never shows (a secret, an escaped
    value): an HMAC under the console process's own key, so the page holds nothing a guess can
    be tested against, and a save can still tell whether the value changed since."""
    return hmac.new(key, json.dumps([name, value]).encode(), hashlib.sha256).hexdigest()


def rows(rec: InstallRecord, typed: Mapping[str, str] | None = None, *,
         key: bytes) -> list[dict[str, Any]]:
    """The page's rows. `typed`: a refused save's form, put back in the fields it filled (only
    what reads as it is) with the values the page first showed under them (`was`), so the
    operator fixes one field instead of typing them all again. `key`: the process's `seal`
    key."""
    shown = rec.redacted_settings()
    out = []
    for s in rec.manifest.setting:
        value = shown.get(s.key)
        secret = s.secret or s.key in rec.secret_keys
        hidden = secret or not tame(value)
        row = {"key": s.key, "type": s.type, "label": s.label, "required": s.required,
               "secret": secret, "options": list(s.options), "value": value,
               "text": shown_text(value), "tame": tame(value),
               "was": seal(key, s.key, rec.settings.get(s.key)) if hidden
               else shown_text(value)}
        was = (typed or {}).get(f"was-{s.key}")
        if was is not None and hidden:
            row["was"] = was  # as the page first showed it (the typed secret is not put back)
        raw = (typed or {}).get(f"setting-{s.key}")
        if raw is not None and not hidden and tame(raw):
            row.update(value=raw, text=raw, was=shown_text(value) if was is None else was)
        out.append(row)
    return out


def save(home: Home, install_id: str, form: Mapping[str, str], *, actor: str,
         key: bytes) -> list[str]:
    """Apply the posted values; returns the keys changed. `key`: the process's `seal` key."""
    with InstallStore(home.host_store) as store:
        rec = store.get(install_id)
        if rec is None:
            raise Refused("no such install")
        new = dict(rec.settings)
        changed: list[str] = []
        for s in rec.manifest.setting:
            raw = form.get(f"setting-{s.key}")
            kept_if_empty = s.secret or s.key in rec.secret_keys or \
                not tame(rec.settings.get(s.key))
            # A field that never shows its value is emptied by its own tick, not by leaving it
            # empty (that keeps it): `clear-KEY`, offered for an optional setting only.
            clear = kept_if_empty and not s.required and form.get(f"clear-{s.key}") == "yes"
            if clear and raw:
                raise Refused(f"{s.key}: type a value or tick 'clear it', not both")
            if raw is None or (kept_if_empty and raw == "" and not clear):
                continue  # not sent, or a secret (or an escaped value) left empty: keep it
            was = form.get(f"was-{s.key}")
            if was is not None and kept_if_empty:
                if not hmac.compare_digest(seal(key, s.key, rec.settings.get(s.key)).encode(),
                                           was.encode("utf-8", "surrogatepass")):
                    raise Changed(f"{s.key} changed meanwhile (another operator's change): "
                                  "nothing was saved; type it again on this page")
            elif was is not None:
                if raw == was:
                    continue  # as the page showed it: not this operator's change
                if shown_text(rec.settings.get(s.key)) != was:
                    raise Changed(f"{s.key} changed meanwhile (another operator's change): "
                                  "nothing was saved; the page now shows the values as they "
                                  "stand, make your change again")
            if raw == "" and s.required:
                raise Refused(f"{s.key} is required: give it a value")
            try:
                # An optional setting emptied is as one no one set: its default, else unset.
                value = emptied_value(s) if empties_setting(s, raw) else coerce_setting(s, raw)
            except ValueError as exc:
                raise Refused(f"{s.key}: {exc}") from None
            if value != rec.settings.get(s.key):
                if value is None:
                    new.pop(s.key, None)
                else:
                    new[s.key] = value
                changed.append(s.key)
        if changed:
            try:
                with audited(home.host_store, "settings", actor=actor, app_id=rec.app_id,
                             install_id=rec.install_id, version=rec.version,
                             setting_keys=tuple(sorted(changed))):
                    store.set_settings(rec.install_id, new, changed)
            except InstallChanged as exc:  # uninstalled meanwhile: nothing was written
                raise Refused(str(exc)) from None
    return changed
