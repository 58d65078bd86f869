"""The CLI's commands, imported when one is run rather than all at every start.

Every command group lives in its own module (`register(root)` hangs it on the root), and most
import a large part of the product: the gate, the ledger and the policy model, the web stack,
the Rocket.Chat client. Imported together they took ~1 s before any command ran, so `stockade
init` or `stockade audit verify` waited for the modules of `serve`, `bench` and `app`. The root
group knows each command's name and the modules that make it (`COMMANDS`, in the order `--help`
lists them) and imports them only when that command is resolved. `stockade --help` (and
`stockade` alone) imports none: it shows each command's help line from `LISTED`.
`tests/house/test_cli_lazy.py` checks both tables against what the modules register.
"""
from __future__ import annotations

import importlib

import typer
import typer.main
from typer import _click as click  # typer >= 0.29 carries its own click: its types are these
from typer.core import TyperCommand, TyperGroup

# Each top-level command, and the modules whose `register` (or import: the `app` and `policy`
# groups gain commands from modules of their own) makes it. In the order `--help` listed them
# when every module was imported at start: the plain commands, then the groups.
COMMANDS: dict[str, tuple[str, ...]] = {
    "init": ("host.cli.init_cmd",),
    "doctor": ("host.cli.doctor_cmd",),
    "can-i": ("host.cli.can_i_cmd",),
    "serve": ("host.cli.serve_cmd",),
    "bench": ("host.cli.bench_cmd",),
    "demo": ("host.cli.demo_cmd",),
    "standin": ("host.cli.standin_cmd",),
    "sandbox": ("host.cli.sandbox_cmd",),
    "policy": ("host.cli.policy_cmd", "host.cli.policy_home_cmd", "host.cli.policy_fmt_cmd"),
    "audit": ("host.cli.audit_cmd",),
    "app": ("host.cli.app_cmd", "host.cli.app_uninstall_cmd", "host.cli.app_consent_cmd",
            "host.cli.app_info_cmd"),
    "keys": ("host.cli.keys_cmd",),
    "rocketchat": ("host.cli.rocketchat_cmd",),
    "store": ("host.cli.store_cmd",),
}

# The first paragraph of each command's help, as `stockade --help` lists it: there, not from the
# command, so listing them imports none (0.9 s -> 0.3 s here). Each must equal the command's own
# (`tests/house/test_cli_lazy.py`: change a command's help, change it here).
LISTED: dict[str, str] = {
    "init": "Create the home folder: layout (0700), the shipped default policy, the host's key.",
    "doctor": "Check the machine and the home folder. Exit 1 when a required check fails.",
    "can-i": "Would APP be allowed ACTION now (or receive EVENT)? Exit 0 yes, 1 no (as the gate\n"
             "decides: its real grants, declared roles, the home's policy; a REST route as the "
             "bridge\naction it amounts to; an event as the reads its data amounts to).",
    "serve": "Serve the REST API (/api/v1/...) on loopback, and run the installed apps; or, "
             "against\na Rocket.Chat workspace, run the apps and receive its webhooks on loopback.",
    "bench": "Measure bridge calls against the pipe floor and the REST API, app start, memory, "
             "fan-out.",
    "demo": "Install four example apps, simulate visitors, show the refusals. Exit 0 if all "
            "behaved.",
    "standin": "Run the embedded server as a stand-in Rocket.Chat workspace (REST + webhooks).",
    "sandbox": "Run code in a fresh sandbox (no app, no permissions).",
    "policy": "Review, explain, diff, format and test policy files.",
    "audit": "Verify and read the audit log (HOME/host.db).",
    "app": "Install and manage apps.",
    "keys": "Publisher keys, the operator's trust store, and the host's own signing keys.",
    "rocketchat": "Connect the home to a Rocket.Chat workspace.",
    "store": "The host's store: where it is and its schema versions.",
}

# Commands built so far, for this process: a group's modules hang commands on module-level
# sub-apps, so they are registered once, however many times the root group is built (each
# `CliRunner.invoke` builds it again).
_BUILT: dict[str, click.Command] = {}


def command(name: str) -> click.Command | None:
    """The command `name` (None if there is none), its modules imported on first use."""
    if name not in _BUILT and name in COMMANDS:
        holder = typer.Typer()
        for module in COMMANDS[name]:
            importlib.import_module(module).register(holder)
        _BUILT.update(typer.main.get_group(holder).commands)
    return _BUILT.get(name)


class LazyGroup(TyperGroup):
    """The root group: `COMMANDS` resolved on demand, typos still answered with a suggestion,
    the command list of its help from `LISTED`."""

    _listing = False  # while `format_help` runs: unbuilt commands stand in with their line

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None and not isinstance(found, _Unbuilt):
            return found
        if self._listing and cmd_name in LISTED and cmd_name not in _BUILT:
            return _Unbuilt(cmd_name, help=LISTED[cmd_name])
        return command(cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        # Typer's "Did you mean" reads the names it holds: every command's, not only the built.
        for name in COMMANDS:
            self.commands.setdefault(name, _Unbuilt(name))
        try:
            return super().resolve_command(ctx, args)
        finally:
            for name in [n for n, c in self.commands.items() if isinstance(c, _Unbuilt)]:
                del self.commands[name]


class _Unbuilt(TyperCommand):
    """A name standing in `commands` while a command is resolved, or listed by the root's help
    with its `LISTED` line (never run: `get_command` builds the real one)."""
