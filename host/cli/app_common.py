"""What the `stockade app` commands share: the typer group, option types, finding an install."""
from __future__ import annotations

from typing import Annotated

import typer

from host.apps.installs import InstallRecord, InstallStore
from host.cli.output import fail
from host.home import Home

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine output on stdout only.")]
GrantOpt = Annotated[list[str] | None, typer.Option(
    "--grant", help="Grant this permission (repeat for each; names every permission granted).")]
AllowUnsigned = Annotated[bool, typer.Option(
    "--allow-unsigned", help="Accept a package that is unsigned or signed by an unknown key.")]
AppRef = Annotated[str, typer.Argument(help="App id (or install id).")]

app_app = typer.Typer(help="Install and manage apps.", no_args_is_help=True)



def store_only(home: Home) -> InstallStore:
    home.ensure()
    return InstallStore(home.host_db)


def resolve(store: InstallStore, ref: str) -> InstallRecord:
    rec = store.by_app(ref) or store.get(ref)
    if rec is None:
        fail(f"no installed app {ref!r}", "see `stockade app list`")
    return rec
