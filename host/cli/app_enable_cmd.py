"""`stockade app enable` and `stockade app disable`: switch an installed app on and off.

Both are commands of the `app` group (`app_common.app_app`); `app_cmd.py` imports this module so
they are registered with the rest. Each switch is an `operator.enable` / `operator.disable`
record in the audit chain, written before the change (rule 14), and a signed consent of its own
(`host/apps/switches.py`).
"""
from __future__ import annotations

import typer

from host.apps.consent import verify_install
from host.apps.installs import InstallChanged, InstallStore
from host.apps.switches import SwitchRefused, switch
from host.cli.app_common import AppRef, JsonFlag, app_app, audit_app, existing_store, resolve
from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail
from host.clock import SystemClock
from host.home import Home
from host.inert import line
from host.ledger.operator import open_keyring


def _open(home: Home) -> InstallStore:
    home.ensure()
    return InstallStore(home.host_store)


@app_app.command("enable")
def enable(ctx: typer.Context, ref: AppRef, json_out: JsonFlag = False) -> None:
    """Enable an app (refused when its consent record does not verify)."""
    existing_store(ctx.obj, ref).close()
    store, keyring = _open(ctx.obj), open_keyring(ctx.obj)
    with store:
        rec = resolve(store, ref)
        check = verify_install(rec, store, keyring, disable=False)
        if not check.ok:
            fail(f"{rec.app_id}: {check.problem}",
                 f"re-confirm its permissions with `stockade app consent {rec.app_id}`",
                 EXIT_NEGATIVE)
        try:
            with audit_app(ctx.obj, "enable", rec) as act:
                seq = switch(store, keyring, rec, True, clock=SystemClock())
                act.note(consent_seq=seq)
        except (SwitchRefused, InstallChanged) as exc:
            fail(f"{rec.app_id}: {exc}", "run the command again", EXIT_NEGATIVE)
        rec = store.get(rec.install_id) or rec
    # The app id is the install row's (host.db): inert (DESIGN rule 12).
    err_console.print(line(f"enabled {rec.app_id}"))
    if json_out:
        emit_json(rec.to_public_dict())


@app_app.command("disable")
def disable(ctx: typer.Context, ref: AppRef, json_out: JsonFlag = False) -> None:
    """Disable an app: its generation is bumped, so every token it holds stops working."""
    store = existing_store(ctx.obj, ref)
    keyring = open_keyring(ctx.obj)
    with store:
        rec = resolve(store, ref)
        try:
            with audit_app(ctx.obj, "disable", rec) as act:
                seq = switch(store, keyring, rec, False, clock=SystemClock(),
                             reason="disabled by the operator")
                rec = store.get(rec.install_id) or rec
                act.note(generation=rec.generation)
                if seq is not None:  # the switch's number, a witness the chain keeps
                    act.note(consent_seq=seq)
        except InstallChanged as exc:
            fail(f"{rec.app_id}: {exc}", "run the command again", EXIT_NEGATIVE)
    err_console.print(line(f"disabled {rec.app_id} (generation {rec.generation})"))
    if json_out:
        emit_json(rec.to_public_dict())
