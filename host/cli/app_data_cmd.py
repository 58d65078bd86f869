"""`stockade app logs`, `app settings` and `app tokens`: what an installed app printed, its
settings, and the capability tokens its children hold.

All are commands of the `app` group (`app_common.app_app`); `app_cmd.py` imports this module so
they are registered with the rest.
"""
from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.text import Text

from host.apps.installs import InstallChanged, InstallRecord, mask_secrets, secret_values
from host.apps.manifest import coerce_setting, emptied_value, empties_setting
from host.cli.app_common import (
    AppRef,
    JsonFlag,
    app_app,
    audit_app,
    existing_store,
    fail_quoting,
    operator_name,
    resolve,
)
from host.cli.ask import secret_line
from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail
from host.home import Home
from host.inert import gutter_rows, host, line, one_row, visible
from host.supervise import applog

# Log tail cap: guards memory against a huge log file (the supervisor caps logs too).
_MAX_LOG_READ = 1024 * 1024


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
    parsed: list[tuple[str, applog.Entry]] = []  # each kept line and who wrote it
    parse = applog.parse
    if path.is_file():
        if not applog.current_format(path):
            parse = applog.parse_legacy  # an earlier release's file: every line the app's
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            start = max(0, size - _MAX_LOG_READ)
            f.seek(start)
            data = f.read()
        if start:
            # The window began inside a line: its rest is dropped, never parsed. An app can
            # size its output so that the cut lands inside one of its own lines, and the rest
            # of that line would read as a line of the host's ("... stockade: ...").
            data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
        raw = data.decode("utf-8", errors="replace")
        parsed = [(ln, e) for ln in mask_secrets(raw, secret_values(rec)).splitlines()
                  if not applog.is_format_note(e := parse(ln))]
        parsed = parsed[-max(0, n):] if n > 0 else []
    lines = [ln for ln, _e in parsed]
    entries = [e for _ln, e in parsed]
    if json_out:
        emit_json({"app_id": rec.app_id, "install_id": rec.install_id, "lines": lines,
                   "entries": [{"ts": when or None, "from": "stockade" if who == "host" else "app",
                                "text": text} for when, who, text in entries]})
        return
    if not lines:
        err_console.print(line(f"no log output for {rec.app_id}"))
    for when, who, text in entries:
        # What the app printed is the app's own text: escapes, bidi and controls shown, never
        # sent to the terminal, always behind the gutter (DESIGN rule 12); only the host's own
        # notes (`supervise/applog.py`: no printed line can be one) go without it. The exact
        # lines are in --json.
        # Each wrapped inside its own column (`gutter_rows`), never left to the terminal: a
        # long line the terminal wraps would put the app's own text at column 0 of the next
        # row, outside the gutter. (Cut at the screen's edge before, a load failure's reason
        # was lost at 80 columns.)
        body = line(text)
        if who == "host":
            rows = gutter_rows(err_console, host(f"{when} stockade: ", "yellow"), Text(" "),
                               body, err_console.width)
        else:
            rows = gutter_rows(err_console, line(host("│ ", "dim"),
                                                 host(f"{when} " if when else "", "dim")),
                               host("│ ", "dim"), body, err_console.width)
        for row in rows:
            err_console.print(row)


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
    text = "true" if value is True else "false" if value is False else str(value)
    shown = visible(text, limit=sys.maxsize)
    if shown != text:
        # The value (the author's default, or what an operator set) holds control, format or
        # blank-looking characters: never sent to a terminal as they are (an OSC sequence can
        # retitle it or write the clipboard), and never passed on altered to a script.
        if not sys.stdout.isatty():
            fail(f"the value of {key[:64]!r} holds control or format characters",
                 "read it exactly with --json")
        text = shown
    typer.echo(text)


@app_app.command("settings")
def settings(
    ctx: typer.Context,
    ref: AppRef,
    assignments: Annotated[list[str] | None, typer.Argument(
        help="KEY=VALUE to set (typed by the manifest; KEY=- reads the value from stdin, the "
        "only way a secret's value is taken; KEY= empties an optional setting: its default, "
        "else unset, as if never set), or one KEY to print its value.")] = None,
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
            reset: list[str] = []  # emptied back to the manifest's default
            for item in assignments:
                key, sep, raw = item.partition("=")
                spec = rec.manifest.setting_named(key)
                if not sep and spec is not None:  # a setting, but no value: not "unknown"
                    fail(f"{key[:64]!r} has no value: use {key[:64]}=VALUE ({key[:64]}= "
                         "empties it)", "a KEY alone prints that setting, and only alone")
                if not sep or spec is None:
                    known = ", ".join(s.key for s in rec.manifest.setting) or "none"
                    fail(f"{item.split('=')[0]!r} is not a setting of {rec.app_id}",
                         f"use KEY=VALUE with one of: {known}")
                secret = spec.secret or key in rec.secret_keys
                if raw == "-":
                    # A secret typed at a terminal is not echoed (`ask.secret_line`).
                    raw = secret_line(f"{key[:64]} (secret, not shown): ") if secret \
                        else sys.stdin.readline().rstrip("\n")
                elif raw.strip() and secret:
                    # A security boundary: a command line is readable by every local user
                    # (/proc/PID/cmdline, ps) while the command runs, and shells keep it in
                    # their history; a secret comes on stdin, as `rocketchat connect`'s token.
                    fail(f"{key[:64]!r} is a secret: its value is not taken from the command "
                         "line, which every local user can read; nothing was changed",
                         f"give it on stdin: `stockade app settings {rec.app_id} {key[:64]}=-` "
                         "(a line of stdin for each KEY=-, in order); rotate it if it is a "
                         "live credential")
                try:
                    if empties_setting(spec, raw):  # as if never set (`emptied_value`)
                        if (default := emptied_value(spec)) is None:
                            new.pop(key, None)
                        else:
                            new[key] = default
                            reset.append(key)
                    else:
                        new[key] = coerce_setting(spec, raw)
                except ValueError as exc:  # a select's options are the author's text
                    fail_quoting(str(exc), "fix the value and try again")
                changed.append(key)
            # Key names only: a value (a secret above all) never goes into the chain.
            # Only the keys named here are written, merged into the settings as they stand
            # then (another operator's change meanwhile keeps); an app gone meanwhile fails.
            try:
                with audit_app(ctx.obj, "settings", rec,
                               setting_keys=tuple(sorted(set(changed)))):
                    store.set_settings(rec.install_id, new, changed)
            except InstallChanged:
                fail(f"{rec.app_id} is no longer installed: nothing changed",
                     "it was uninstalled meanwhile (`stockade app list`)", EXIT_NEGATIVE)
            rec = store.get(rec.install_id) or rec
            err_console.print(line(f"updated {', '.join(changed)} for {rec.app_id}"))
            if reset:
                err_console.print(line(f"emptied to the manifest's default: {', '.join(reset)}"))
    shown = rec.redacted_settings()
    if json_out:
        emit_json({"app_id": rec.app_id, "settings": shown,
                   "secret_settings": sorted(rec.secret_keys)})
        return
    for s in rec.manifest.setting:
        value = shown.get(s.key)
        mark = " (secret)" if s.secret else ""
        # A value is author text inline (a default) or the operator's: cut to the screen, so
        # it cannot wrap into a row of its own choosing (`one_row`); `KEY` alone prints it whole.
        err_console.print(one_row(line(f"{s.key} [{s.type}]{mark}: ", host(
            "<unset>", "dim") if value is None else str(value)), err_console.width))




@app_app.command("tokens")
def tokens_cmd(
    ctx: typer.Context,
    ref: AppRef,
    revoke: Annotated[str | None, typer.Option(
        "--revoke", help="Revoke this token (its jti), or 'all' for every live one.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """The app's capability tokens (one per child session): live or revoked, and why.

    A revoked token never verifies again; the serving host stops the child holding it (the
    install's generation is bumped, so the gate refuses that child's next call) and starts it
    again with a new token."""
    from host.keys.registry import TokenRegistry

    home: Home = ctx.obj
    # A read-only listing never makes a home (a mistyped --home stays uncreated): an app
    # of a home with no store is not found, as in every other `app` command.
    store = existing_store(home, ref)
    registry = TokenRegistry(home.host_store)
    with store:
        rec = resolve(store, ref)
        revoked: list[str] = []
        if revoke is not None:
            jti = None if revoke == "all" else revoke
            if jti is not None and not registry.is_live(rec.install_id, jti):
                fail(f"{rec.app_id} holds no live token {revoke[:40]!r}",
                     f"see `stockade app tokens {rec.app_id}`")
            with audit_app(home, "token_revoke", rec, detail=f"token {revoke[:64]}") as act:
                revoked = registry.revoke(rec.install_id, time.time(),
                                          f"revoked by the operator ({operator_name()})", jti)
                store.bump_generation(rec.install_id)  # the gate refuses the next call at once
                act.note(detail=f"revoked {len(revoked)} token(s)")
        rows = registry.list(rec.install_id)
    registry.close()
    if json_out:
        emit_json({"app_id": rec.app_id, "revoked": revoked, "tokens": [t.to_json() for t in rows]})
        return
    if revoke is not None:
        err_console.print(line(f"revoked {len(revoked)} token(s) of {rec.app_id}"))
    for t in rows:
        state = "live" if t.revoked_at is None else f"revoked ({t.reason})"
        # Token rows (their reason, ids) are host.db's: inert (DESIGN rule 12).
        err_console.print(line(f"{t.jti}  key {t.kid}  generation {t.generation}  {state}"))
