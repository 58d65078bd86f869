"""Root of the `stockade` CLI. Each command group lives in its own `host/cli/<group>_cmd.py`."""
from __future__ import annotations

import importlib

import typer

from host.home import resolve_home

root = typer.Typer(
    name="stockade",
    help="Host for untrusted chat apps: confined children, one capability-checked gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@root.callback()
def _main(
    ctx: typer.Context,
    home: str = typer.Option(
        None, "--home", envvar="STOCKADE_HOME", help="State folder (default ~/.stockade)."
    ),
) -> None:
    ctx.obj = resolve_home(home)


# Sub-apps (`stockade policy ...`) and top-level commands (`stockade doctor`) are registered by
# their modules' `register(root)` so each group stays in one file.
_GROUPS = (
    "host.cli.init_cmd",
    "host.cli.sandbox_cmd",
    "host.cli.doctor_cmd",
    "host.cli.policy_cmd",
    "host.cli.policy_home_cmd",
    "host.cli.audit_cmd",
    "host.cli.serve_cmd",
    "host.cli.app_cmd",
    "host.cli.app_consent_cmd",
    "host.cli.keys_cmd",
    "host.cli.bench_cmd",
    "host.cli.demo_cmd",
)
for _name in _GROUPS:
    importlib.import_module(_name).register(root)


def main() -> None:
    root()
