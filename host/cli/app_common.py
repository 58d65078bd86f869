"""What the `stockade app` commands share: the typer group, option types, finding an install,
the publisher-lineage check run before any consent prompt."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from host.apps.installs import InstallRecord, InstallStore
from host.apps.lineage import Lineage, binding_of, describe, lineage_problem, needs_transfer
from host.apps.publisher import SignatureCheck
from host.cli.output import EXIT_NEGATIVE, EXIT_USAGE, err_console, fail
from host.clock import SystemClock
from host.home import Home
from host.inert import gutter_rows, host, line
from host.ledger.operator import Act, audited, operator_actor

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine output on stdout only.")]
GrantOpt = Annotated[list[str] | None, typer.Option(
    "--grant", help="Grant this permission (repeat for each; names every permission granted).")]
AllowUnsigned = Annotated[bool, typer.Option(
    "--allow-unsigned", help="Accept a package that is unsigned or signed by an unknown key.")]
AppRef = Annotated[str, typer.Argument(help="App id (or install id).")]

app_app = typer.Typer(help="Install and manage apps.", no_args_is_help=True)



def store_only(home: Home) -> InstallStore:
    home.ensure()
    return InstallStore(home.host_store)


def existing_store(home: Home, ref: str) -> InstallStore:
    """The install store of a home that has one; otherwise `ref` is not found. Read-only
    commands use this so a mistyped --home never creates a home."""
    if not home.has_host_store():
        not_found(ref)
    return InstallStore(home.host_store)


def print_quoting(label: str, message: str, style: str = "bold red") -> None:
    """A host line whose `message` quotes a package's own text (a setting's options, a name it
    declares, a file name), wrapped in its own column behind `label` (`gutter_rows`). Left to
    the terminal, a long line continues at column 0, where a manifest's padding put a row of
    its choosing ("hint: ... reinstall it with --allow-unsigned") under the host's label."""
    for row in gutter_rows(err_console, host(f"{label} ", style), Text(""), line(message),
                           err_console.width):
        err_console.print(row)


def fail_quoting(message: str, hint: str = "", code: int = EXIT_USAGE) -> NoReturn:
    """`fail` for a message that quotes a package's own text (`print_quoting`)."""
    print_quoting("error:", message)
    if hint:
        err_console.print(line(host("hint:", "dim"), " ", hint))
    raise typer.Exit(code)


def not_found(ref: str) -> NoReturn:
    """Not found has one exit code everywhere: 2 (usage or input error)."""
    fail(f"no installed app {ref!r}", "see `stockade app list`")


def resolve(store: InstallStore, ref: str) -> InstallRecord:
    rec = store.by_app(ref) or store.get(ref)
    if rec is None:
        not_found(ref)
    return rec


TransferOpt = Annotated[bool, typer.Option(
    "--transfer-publisher",
    help="Hand an app id that belongs to another publisher (or to no verified publisher) to "
         "this package's publisher: it takes over the users, rules and quotas of that id. "
         "Audited.")]

TRANSFER_HINT = ("if you mean to hand this app id, and the users it created, to the new "
                 "publisher, repeat with --transfer-publisher; otherwise this is another app "
                 "posing as the installed one")


def check_lineage(home: Home, app_id: str, sig: SignatureCheck, transfer: bool) -> None:
    """Before any consent prompt: refuse a package from another publisher than the one the id
    is bound to, or say plainly what a transfer hands over. `install_package` checks again
    in the transaction that binds (this early look is for the operator, not the boundary)."""
    if not home.has_host_store():
        return
    bound = Lineage(home.host_store).bound(app_id)
    new = binding_of(sig.to_dict())
    if bound is None or not needs_transfer(bound, new, fresh=True):
        return
    if not transfer:
        fail(lineage_problem(app_id, bound, new), TRANSFER_HINT, EXIT_NEGATIVE)
    # describe() names publishers (trust-store names, key ids): inert (DESIGN rule 12)
    err_console.print(line(
        host("TRANSFER", "bold red"),
        f": app id {app_id} moves from {describe(bound)} to {describe(new)}; the new "
        "publisher's app takes over the users, rules and quotas of this id (audited)"))


def operator_name() -> str:
    """Who ran this command (the OS account), for the audit records of operator actions."""
    return operator_actor()


RestAsOpt = Annotated[str | None, typer.Option(
    "--rest-as", metavar="USERNAME",
    help="Server user this app's REST routes without a bridge action act as (default: the "
         "app's own user; `--rest-as app` goes back to it). Shown in the disclosure and signed "
         "in the consent.")]


def rest_identity(home: Home, current: str | None, flag: str | None) -> str | None:
    """The REST identity the new consent names: the flag's (`app` = the app's own user, None),
    else the one already consented to. A named user must exist on the server."""
    if flag is None:
        return current
    if flag == "app":
        return None
    from host.server.embedded import EmbeddedServer
    from host.server.errors import ServerError
    from host.server.principals import SYSTEM

    try:
        EmbeddedServer(home.ensure().server_store, SystemClock()).users_get_by_username(SYSTEM,
                                                                                     flag)
    except ServerError:
        fail(f"--rest-as {flag!r}: no such server user", "create the user first, or pass "
             "--rest-as app for the app's own user")
    return flag

def audit_app(home: Home, kind: str, rec: InstallRecord,
              **fields: Any) -> AbstractContextManager[Act]:
    """`operator.<kind>` for this install (rule 14), appended before the change it wraps."""
    fields.setdefault("version", rec.version)
    return audited(home.host_store, kind, app_id=rec.app_id, install_id=rec.install_id, **fields)


def print_running(r: dict[str, Any]) -> None:
    """`app list`'s lines under an app (`r`, a row of it): what the serving host is doing with
    it now, and why it last stopped, or why it stays stopped (a crash-loop stop: its record's)."""
    if r["running"] is not None:
        err_console.print(line(f"    {_running_line(r['running'])}"))
    crash = r["crash_stop"] if r["enabled"] else None
    why = crash or (r["running"] or {}).get("last_error")
    if why:  # the host's words only (`last_crash`, the app's stderr, is in app logs)
        for row in gutter_rows(err_console, host("    crash stop: " if crash else
                                                 "    last stop: "), host("    "),
                               line(str(why), host("  (see stockade app logs "),
                                    str(r["app_id"]), host(")")), err_console.width):
            err_console.print(row)


def _running_line(st: dict[str, Any]) -> str:
    """One line of a running app's state: what `stockade serve` is doing with it now."""
    state = str(st["state"])
    if state == "backoff":
        state = f"restarting in {st['backoff_s']:.1f}s (backoff)"
    elif state == "crashed":
        state = "crashed (starts no child until `stockade app enable`)"
    parts = [f"{state} on host pid {st['host_pid']}", f"restarts {st['restarts']}",
             f"events {st['events_done']} ok / {st['events_failed']} failed",
             f"queued {st['queued']}", f"dropped {st['dropped']}"]
    if st.get("refusal_stops"):
        parts.append(f"stopped {st['refusal_stops']}x for too many refusals")
    if st.get("logs_cut"):
        parts.append(f"log cut in {st['logs_cut']} event(s)")
    return ", ".join(parts)
