"""`stockade app info`: one installed app in words a person reads (`--json` for scripts).

The publisher line is the trust store's answer now (a key untrusted since the install shows as
such), next to what it was at install. Required settings that have no value are flagged.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.text import Text

from host.apps import lifecycle_seams
from host.apps.packages import PackageError, read_package
from host.apps.publisher import PublisherError, TrustStore, check_signature
from host.cli.app_cmd import _checked, _open
from host.cli.app_common import AppRef, JsonFlag, app_app, existing_store, resolve
from host.cli.output import emit_json, err_console
from host.home import Home
from host.inert import MAX_BLOCK, one_row, visible


def publisher_now(home: Home, package_path: Any, content_hash: str) -> dict[str, str | None]:
    """Who vouches for the installed package according to today's trust store: the package
    stored at `package_path`, only if it is the one installed (`content_hash`). A file swapped
    there was read and its signer shown as the installed app's publisher."""
    try:
        pkg = read_package(package_path)
        if pkg.content_hash != content_hash:
            return {"status": "unreadable", "kid": None, "publisher": None,
                    "problem": "the stored package is not the one installed (its content hash "
                               "differs): the app will not start"}
        return check_signature(pkg, TrustStore(home.trust_dir)).to_dict()
    except (PackageError, PublisherError, OSError) as exc:
        return {"status": "unreadable", "kid": None, "publisher": None, "problem": str(exc)}


def _publisher_words(p: dict[str, Any]) -> str:
    status = p.get("status")
    if status == "trusted":
        return f"signed by {p.get('publisher')} (key {p.get('kid')}), trusted"
    if status == "unsigned":
        return "unsigned: nobody vouches for this package's contents"
    if status == "unreadable":
        return f"the installed package cannot be read ({p.get('problem')})"
    return f"signed by key {p.get('kid')}, which is not in the trust store"


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cut(text: str, width: int) -> str:
    return one_row(Text(visible(text, limit=MAX_BLOCK)), max(width, 8)).plain


def _value(v: Any) -> str:
    if v is None:
        return "<unset>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@app_app.command("info")
def info(ctx: typer.Context, ref: AppRef, json_out: JsonFlag = False) -> None:
    """One app: version, grants, settings (secrets masked), publisher trust now, consent."""
    home: Home = ctx.obj
    existing_store(home, ref).close()
    store, keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        d = _checked(store, keyring, rec)
        # A count that cannot be taken is said so, never shown as none (`app_users_counted`).
        count, why = lifecycle_seams.app_users_counted(home, rec)
        d["app_users"], d["app_users_unknown"] = count, why or None
    d["publisher_now"] = publisher_now(home, rec.package_path, rec.package_hash)
    if json_out:
        emit_json(d)
        return
    # The name and the settings' values are author text inline: cut to the screen, so none
    # wraps into a row of the author's choosing (`one_row`); the host's lines stay whole.
    width = err_console.width
    # The first row is the host's (id and version are pattern-checked by the manifest); the
    # name, free text, stands after its label, quoted: leading the row, a name reading
    # "  publisher:  signed by ..., trusted" drew a publisher line of the host's own shape.
    lines = [f"{d['app_id']} {d['version']}", _cut(f"  name:       “{d['name']}”", width)]
    state = "enabled" if d["enabled"] else f"disabled: {d['disabled_reason'] or 'by the operator'}"
    if d["enabled"] and d["crash_stop"]:  # `host.supervise.restarts`: until `app enable`
        state = f"enabled, but {d['crash_stop']}"
    lines.append(f"  state:      {state}")
    lines.append(f"  publisher:  {_publisher_words(d['publisher_now'])}")
    if d["publisher_now"].get("status") != d["publisher"].get("status"):
        lines.append(f"              (at install: {_publisher_words(d['publisher'])})")
    lines.append(f"  granted:    {', '.join(d['grants']) or 'nothing'}")
    if d["denied"]:
        lines.append(f"  not granted (PermissionDenied): {', '.join(d['denied'])}")
    lines.append(f"  events:     {', '.join(d['events']) or 'none'}")
    consent = "verified" if d["consent_ok"] else f"DOES NOT VERIFY: {d['consent_problem']}"
    lines.append(f"  consent:    {consent}")
    if rec.manifest.setting:
        lines.append("  settings:")
        missing = set(d["missing_settings"])
        for s in rec.manifest.setting:
            flag = "  <- required, not set" if s.key in missing else ""
            secret = " (secret)" if s.key in d["secret_settings"] else ""
            head = f"    {s.key}{secret}: "
            value = _cut(_value(d["settings"].get(s.key)), width - len(head) - len(flag))
            lines.append(f"{head}{value}{flag}")
    if d["missing_settings"]:
        # A secret's value is read from stdin only (`app settings`: not on a command line).
        secret_missing = set(d["missing_settings"]) & set(d["secret_settings"])
        how = ("KEY=VALUE" if not secret_missing else "KEY=-, the value on stdin"
               if secret_missing == set(d["missing_settings"])
               else "KEY=VALUE; a secret: KEY=-, the value on stdin")
        lines.append(f"  needs settings: {', '.join(d['missing_settings'])} "
                     f"(`stockade app settings {d['app_id']} {how}`)")
    if d["pending_update"]:
        lines.append(f"  pending update: {d['pending_update']['version']} waits for "
                     f"`stockade app consent {d['app_id']}`")
    users = d["app_users"] if d["app_users"] is not None else f"cannot tell ({why})"
    lines.append(f"  users it created: {users}")
    lines.append(f"  installed:  {_when(d['installed_at'])}; updated {_when(d['updated_at'])}")
    lines.append(f"  install id: {d['install_id']} (generation {d['generation']})")
    for text_line in lines:
        # name, settings, reasons are author text: each line inert (DESIGN rule 12)
        err_console.print(Text(visible(text_line, limit=MAX_BLOCK)))


def register(root: typer.Typer) -> None:
    """The command hangs on the `app` group (`host.cli.app_common.app_app`)."""
