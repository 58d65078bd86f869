"""`stockade init`: create a home on purpose, with the shipped default policy and a host key.

Any command that writes creates the home too (with the same default policy); `init` is the
documented first step, says what it made, and is idempotent: on an existing home it creates
nothing that is already there and never overwrites a policy file.
"""
from __future__ import annotations

import typer

from host.cli.output import EXIT_USAGE, emit_json, err_console, fail
from host.home import Home, toml_files
from host.inert import line


def init(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Machine output on stdout only."),
) -> None:
    """Create the home folder: layout (0700), the shipped default policy, the host's key."""
    from host.keys.keyring import Keyring
    from host.ledger.operator import append_operator, open_keyring

    home: Home = ctx.obj
    if home.root.exists() and not home.root.is_dir():
        fail(f"{home.root} exists and is not a folder", "pass another --home", EXIT_USAGE)
    existed = home.root.exists()
    # A home whose first init stopped part-way (a full disk) has its folder but no store yet:
    # this init finishes it, and writes the record the first one could not.
    unfinished = existed and home.store_url is None and not home.host_db.exists()
    existed = existed and not unfinished
    had_key = (home.keys_dir / "keyring.json").exists()
    try:
        home.ensure()
        if not existed:  # rule 14: a home's first record says who made it
            append_operator(home.host_store, "init", detail=f"home {home.root}")
        # generating the first key is audited (`operator.key_generate`)
        ring = Keyring.open(home.keys_dir) if had_key else open_keyring(home)
    except OSError as exc:
        fail(f"cannot create the home {home.root}: {exc.strerror or exc}",
             "pass a --home you can write to")
    policies = [p.name for p in toml_files(home.policies_dir)]
    if json_out:
        emit_json({"home": str(home.root), "created": not existed, "policies": policies,
                   "host_key": ring.current, "host_key_created": not had_key})
        return
    verb = "initialized" if not existed else "already initialized"
    err_console.print(f"{verb} {home.root}", highlight=False)
    # The policy files' names are the policy author's (DESIGN rule 12): inert.
    err_console.print(line(f"  policies: {', '.join(policies) or 'none'} in {home.policies_dir}"))
    err_console.print(f"  host key: {ring.current}" + (" (new)" if not had_key else ""),
                      highlight=False)
    err_console.print("next: `stockade doctor`, then `stockade app install PACKAGE`",
                      highlight=False)


def register(root: typer.Typer) -> None:
    root.command("init")(init)
