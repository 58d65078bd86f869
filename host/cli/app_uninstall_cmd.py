"""`stockade app uninstall`: remove an app, its stored data and package, after saying what goes.

A command of the `app` group (`app_common.app_app`), registered after `app_cmd.py`'s own
(`host.cli.lazy` names this module after it), so `stockade app --help` lists it where it always
stood. The users an app created and its livechat agents are the operator's choice, asked or
given (`--users`, `--agents`); one that needs the chat server is refused when it cannot be asked.
"""
from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from host.apps import lifecycle_seams
from host.apps.consent import is_interactive
from host.apps.installs import InstallGone, InstallRecord
from host.apps.operations import uninstall_app
from host.cli.app_cmd import _confirm
from host.cli.app_common import AppRef, JsonFlag, app_app, existing_store, operator_name, resolve
from host.cli.output import EXIT_CONFIRM, EXIT_NEGATIVE, emit_json, err_console, fail
from host.home import Home
from host.inert import MAX_BLOCK, host, line, visible


@app_app.command("uninstall")
def uninstall(
    ctx: typer.Context,
    ref: AppRef,
    users: Annotated[str | None, typer.Option(
        "--users", help="What to do with users the app created: deactivate or keep.")] = None,
    agents: Annotated[str | None, typer.Option(
        "--agents", help="What to do with the app's livechat agents (its users, its app user): "
                         "remove or keep (kept agents are still routed rooms).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; "
                                                             "change nothing.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Remove an app, its stored data and package; every token it holds stops working.

    Says what it deletes first, and asks (or needs --yes).
    """
    home: Home = ctx.obj
    if users not in (None, "deactivate", "keep"):
        fail(f"--users {users!r} is not deactivate or keep", "pass --users deactivate|keep")
    if agents not in (None, "remove", "keep"):
        fail(f"--agents {agents!r} is not remove or keep", "pass --agents remove|keep")
    store = existing_store(home, ref)
    with store:
        rec = resolve(store, ref)
        # A count that cannot be taken is said so, never shown as none (`app_users_counted`).
        count, why = lifecycle_seams.app_users_counted(home, rec)
        _say_what_uninstall_deletes(home, rec, count, why)
        if dry_run:
            err_console.print("dry run: nothing changed", highlight=False)
            if json_out:
                emit_json({"app_id": rec.app_id, "dry_run": True,
                           "stored_items": lifecycle_seams.count_app_data(home, rec)})
            return
        if why.startswith("the chat server cannot") and (users, agents) != ("keep", "keep"):
            fail(f"{why}: nothing changed", "fix the connection (`stockade rocketchat check`), "
                 "or pass --users keep --agents keep to uninstall without asking it")
        if not yes:
            if not is_interactive():
                fail(f"uninstalling {rec.app_id} deletes the data above",
                     "pass --yes to confirm (nothing changed)", EXIT_CONFIRM)
            if not _confirm(f"Uninstall {rec.app_id} and delete this?", False):
                fail("nothing changed: you declined", "", EXIT_NEGATIVE)
        if users is None:
            if count:
                if not is_interactive():
                    fail(f"{rec.app_id} created {count} user(s): choose what happens to them",
                         "pass --users deactivate or --users keep", EXIT_CONFIRM)
                users = "deactivate" if _confirm(
                    f"Deactivate the {count} user(s) {rec.app_id} created?", True) else "keep"
            else:
                users = "keep"
        n_agents = lifecycle_seams.app_agents_counted(home, rec) or 0
        if agents is None:
            # No routable agent is left behind unless the operator says so (issue 24): a kept
            # bot that nobody answers would still be routed new conversations.
            if n_agents and users == "keep" and not is_interactive():
                fail(f"{rec.app_id} has {n_agents} livechat agent(s) that would still be routed "
                     "rooms", "pass --agents remove or --agents keep", EXIT_CONFIRM)
            agents = "keep" if n_agents and users == "keep" and not _confirm(
                f"Stop routing rooms to the {n_agents} agent(s) of {rec.app_id}?", True
            ) else "remove"
        try:
            deactivated, data = uninstall_app(home, store, rec, users=users, agents=agents,
                                              actor=operator_name())
        except InstallGone as exc:  # another operator's uninstall landed after our read
            fail(str(exc), "see `stockade app list`")  # exit 2, as for an app not found
        except lifecycle_seams.SERVER_UNASKABLE as exc:  # its agents' removal needs the server
            fail(f"the chat server cannot be asked: {exc}; the app is still installed",
                 "fix the connection, or pass --users keep --agents keep (asks it nothing)")
        if users == "deactivate" and deactivated is None:
            err_console.print(host("no chat server is wired to this CLI: the app's users were "
                                   "kept; deactivate them on the server", "yellow"))
    err_console.print(line(f"uninstalled {rec.app_id}; users: {users}; agents: {agents}; "
                           f"data: {data}"))
    if agents == "keep" and n_agents and users == "keep":
        err_console.print(line(f"warning: {n_agents} agent(s) of {rec.app_id} are still livechat "
                               "agents: rooms will still be routed to them"), style="yellow")
    if json_out:
        emit_json({"app_id": rec.app_id, "install_id": rec.install_id, "users": users,
                   "users_deactivated": deactivated, "agents": agents,
                   "agents_routable": n_agents if agents == "keep" and users == "keep" else 0,
                   "data": data})


def _say_what_uninstall_deletes(home: Home, rec: InstallRecord, users: int | None,
                                why: str) -> None:
    agents = lifecycle_seams.app_agents_counted(home, rec)
    stored = lifecycle_seams.count_app_data(home, rec)
    log = home.logs_dir / f"{rec.install_id}.log"
    lines = [f"uninstall {rec.app_id} {rec.version} deletes:",
             "  - its install record and consent (every token it holds stops working)",
             f"  - {stored} stored item(s) in its private storage",
             f"  - its package{' and the pending update' if rec.pending else ''} "
             f"({rec.package_path.parent})"]
    if log.exists():
        lines.append(f"  - its log ({log})")
    if users is None:
        lines.append(f"  cannot tell how many users it created ({why}): they are kept "
                     "unless --users deactivate")
    elif users:
        lines.append(f"  users it created ({users}): deactivated or kept, as --users says")
    if agents:
        lines.append(f"  its livechat agents ({agents}): removed or kept, as --agents says")
    lines.append("  the audit log keeps every record of it")
    for text_line in lines:
        err_console.print(Text(visible(text_line, limit=MAX_BLOCK)))


def register(root: typer.Typer) -> None:
    """The command hangs on the `app` group (`host.cli.app_common.app_app`)."""
    root.add_typer(app_app, name="app")
