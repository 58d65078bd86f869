"""`stockade app logs` and `stockade app settings`: what an installed app printed, and its settings.

Both are commands of the `app` group (`app_common.app_app`); `app_cmd.py` imports this module so
they are registered with the rest.
"""
from __future__ import annotations

import sys
from typing import Annotated

import typer

from host.apps.installs import SECRET_MASK, InstallRecord
from host.apps.manifest import coerce_setting
from host.cli.app_common import AppRef, JsonFlag, app_app, existing_store, resolve
from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail
from host.home import Home
from host.inert import host, line

# Log tail cap: guards memory against a huge log file (the supervisor caps logs too).
_MAX_LOG_READ = 1024 * 1024


def _redact(text: str, secrets_: list[str]) -> str:
    for value in sorted(secrets_, key=len, reverse=True):
        if value:
            text = text.replace(value, SECRET_MASK)
    return text


@app_app.command("logs")
def logs(
    ctx: typer.Context,
    ref: AppRef,
    n: Annotated[int, typer.Option("-n", help="How many lines from the end.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """The app's captured output (secret setting values are masked)."""
    home: Home = ctx.obj
    store = existing_store(home, ref)
    with store:
        rec = resolve(store, ref)
    path = home.logs_dir / f"{rec.install_id}.log"
    lines: list[str] = []
    if path.is_file():
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _MAX_LOG_READ))
            raw = f.read().decode("utf-8", errors="replace")
        secret_values = [str(rec.settings[k]) for k in rec.secret_keys if k in rec.settings]
        lines = _redact(raw, secret_values).splitlines()[-max(0, n):] if n > 0 else []
    if json_out:
        emit_json({"app_id": rec.app_id, "install_id": rec.install_id, "lines": lines})
        return
    if not lines:
        err_console.print(f"no log output for {rec.app_id}", highlight=False)
    for text in lines:
        # What the app printed is the app's own text: escapes, bidi and controls shown, never
        # sent to the terminal (DESIGN rule 12). The exact lines are in --json.
        err_console.print(line(host("│ ", "dim"), text))


def _show_one(rec: InstallRecord, key: str, json_out: bool) -> None:
    """`app settings APP KEY`: that one value on stdout (a secret stays masked)."""
    spec = rec.manifest.setting_named(key)
    if spec is None:
        known = ", ".join(s.key for s in rec.manifest.setting) or "none"
        fail(f"{key[:64]!r} is not a setting of {rec.app_id}", f"its settings: {known}")
    value = rec.redacted_settings().get(key)
    if json_out:
        emit_json({"app_id": rec.app_id, "key": key, "value": value,
                   "secret": key in rec.secret_keys or spec.secret,
                   "required": spec.required})
        return
    if value is None:
        err_console.print(f"{key} is not set" + (" (required)" if spec.required else ""),
                          highlight=False, markup=False)
        raise typer.Exit(EXIT_NEGATIVE)
    typer.echo("true" if value is True else "false" if value is False else str(value))


@app_app.command("settings")
def settings(
    ctx: typer.Context,
    ref: AppRef,
    assignments: Annotated[list[str] | None, typer.Argument(
        help="KEY=VALUE to set (typed by the manifest; KEY=- reads the value from stdin), "
        "or one KEY to print its value.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Show or change an app's settings. Secret values are stored but never shown."""
    store = existing_store(ctx.obj, ref)
    with store:
        rec = resolve(store, ref)
        if assignments and len(assignments) == 1 and "=" not in assignments[0]:
            _show_one(rec, assignments[0], json_out)
            return
        if assignments:
            new = dict(rec.settings)
            changed: list[str] = []
            for item in assignments:
                key, sep, raw = item.partition("=")
                spec = rec.manifest.setting_named(key)
                if not sep or spec is None:
                    known = ", ".join(s.key for s in rec.manifest.setting) or "none"
                    fail(f"{item.split('=')[0]!r} is not a setting of {rec.app_id}",
                         f"use KEY=VALUE with one of: {known}")
                if raw == "-":
                    raw = sys.stdin.readline().rstrip("\n")
                try:
                    new[key] = coerce_setting(spec, raw)
                except ValueError as exc:
                    fail(str(exc), "fix the value and try again")
                changed.append(key)
            store.set_settings(rec.install_id, new, changed)
            rec = store.get(rec.install_id) or rec
            err_console.print(f"updated {', '.join(changed)} for {rec.app_id}", highlight=False)
    shown = rec.redacted_settings()
    if json_out:
        emit_json({"app_id": rec.app_id, "settings": shown,
                   "secret_settings": sorted(rec.secret_keys)})
        return
    for s in rec.manifest.setting:
        value = shown.get(s.key)
        mark = " (secret)" if s.secret else ""
        err_console.print(line(f"{s.key} [{s.type}]{mark}: ",
                               host("<unset>", "dim") if value is None else str(value)))


