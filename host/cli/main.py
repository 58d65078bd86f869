"""Root of the `stockade` CLI. Each command group lives in its own `host/cli/<group>_cmd.py`."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn, TextIO, cast

import typer

from host import logline
from host.cli.interrupt import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    INTERRUPTED_LINE,
    TERMINATED_LINE,
    Interrupted,
    Terminated,
    install_redelivery,
    interrupt_in,
    owed,
    settle,
)
from host.cli.lazy import LazyGroup
from host.cli.output import fail
from host.cli.quietpipe import QuietPipe
from host.errors import StartRefused
from host.home import STORE_ENV_VAR, URL_PREFIXES, Home, redact_url, resolve_home, url_secrets
from host.ledger.errors import AuditError

root = typer.Typer(
    name="stockade",
    help="Host for untrusted chat apps: confined children, one capability-checked gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=LazyGroup,  # each command's modules imported when it runs (host/cli/lazy.py)
)


def _version(asked: bool) -> None:
    """`--version`: the installed package's version and the interpreter's, for a bug report."""
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("stockade")
    except PackageNotFoundError:  # run from a source tree that was never installed
        mine = "unknown (not installed)"
    typer.echo(f"stockade {mine} (Python {sys.version.split()[0]}, {sys.platform})")
    raise typer.Exit()


@root.callback()
def _main(
    ctx: typer.Context,
    _show_version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version,
        help="Print the version and exit."),
    home: str = typer.Option(
        None, "--home", envvar="STOCKADE_HOME", help="State folder (default ~/.stockade)."
    ),
    store: str = typer.Option(
        None, "--store", envvar="STOCKADE_STORE", show_envvar=True,
        help="A PostgreSQL URL several hosts share (default: the home's store.toml, else the "
             "home's own host.db). See docs/SCALE.md."),
) -> None:
    if store and not store.startswith(URL_PREFIXES):
        fail(f"--store {redact_url(store)!r} is not a PostgreSQL URL",
             "pass postgresql://USER@HOST:PORT/DB (or none: the home's own SQLite host.db)")
    source = ctx.get_parameter_source("store")
    if store and url_secrets(store) and source is not None and source.name == "COMMANDLINE":
        # A command line is every local user's to read (/proc/PID/cmdline, for as long as a
        # `serve` runs) and stays in shell history; the variable and the file are not.
        fail("--store holds a password, and a command line is readable by every local user",
             "keep the password in ~/.pgpass (PGPASSFILE): the bench reads only a --store typed "
             "on its command line" if ctx.invoked_subcommand == "bench" else
             f"name the URL in {STORE_ENV_VAR} or HOME/store.toml (0600), or keep the password "
             "in ~/.pgpass (PGPASSFILE)")
    try:
        resolved = resolve_home(home, store)
    except StartRefused as exc:
        fail(str(exc), exc.hint)
    # `store` is how a schema gets current; `bench --store` works in a schema of its own; the
    # demo (and the bench without --store) runs in a temporary home of its own, on no store of
    # the operator's, so an unreachable one must not stop it.
    if resolved.store_url is not None and ctx.invoked_subcommand not in (
            "store", "bench", "demo", None):
        _check_shared_store(resolved.store_url)
    if resolved.root.exists() and not resolved.root.is_dir():
        fail(f"--home {resolved.root} is not a folder", "pass the home folder (or none: "
             "~/.stockade); `stockade init --home DIR` creates one")
    ctx.obj = resolved
    _homes.append(resolved)  # named in `main`'s message if a store stays locked


# The home this command runs on, once resolved (for `_locked`'s message).
_homes: list[Home] = []


def _locked() -> str:
    """One line for a command kept from `host.db`'s (or `server.db`'s) write lock past the
    busy timeout, naming the process that holds it (`host.store.lockholder`)."""
    from host.store import lockholder
    from host.store.sqlite import BUSY_TIMEOUT_MS

    dbs = [h.host_db for h in _homes[-1:]] + [h.root / "server.db" for h in _homes[-1:]]
    where, who = next(((db, w) for db in dbs if (w := lockholder.db_write_lock_holder(db))
                       != "another process"), (dbs[0] if dbs else "the store", "another process"))
    resume = " (`kill -CONT` resumes it)" if who.endswith(", stopped") else ""
    return (f"error: {where} is locked: {who}{resume} has held its write lock for over "
            f"{BUSY_TIMEOUT_MS / 1000:g} s; this command stopped at the write it could not make "
            "(each write is one transaction: none is left half-made)\n"
            "hint: run it again once that process lets go of it (a `stockade serve` stopped "
            "with SIGSTOP or Ctrl-Z in a write holds it until it is resumed or ended)\n")


def _check_shared_store(url: str) -> None:
    """Every command on a shared store fails in one line, before it does anything, when the
    store is unreachable or its schema is not this release's (`stockade store migrate`)."""
    from host.migrate import store_status
    from host.store import STORE_FAILURES, describe

    try:
        stale = [s for s in store_status(url) if not s.current]
    except STORE_FAILURES as exc:
        fail(f"the store at {describe(url)} cannot be read: {exc}",
             "check the URL, the server, and this user's rights on the database",
             EXIT_START_REFUSED)
    if stale:
        names = ", ".join(f"{s.name} {s.have or '-'} (needs {s.need})" for s in stale)
        fail(f"the store at {describe(url)} is not at this release's schema: {names}",
             "run `stockade store migrate` (once, from one host); a newer schema needs a newer "
             "Stockade", EXIT_START_REFUSED)




# Options every command accepts wherever they stand, as in kubectl: `--home` belongs to the
# root and `--json` to each command, and click only reads each in its own place.
_ROOT_VALUE_OPTS = ("--home", "--store")


def normalize_argv(argv: list[str]) -> list[str]:
    """Move `--home DIR` and `--store URL` to the front and a `--json` given before the
    command to its end."""
    head: list[str] = []
    rest: list[str] = []
    json_early = False
    seen_command = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in _ROOT_VALUE_OPTS and i + 1 < len(argv):
            head += [arg, argv[i + 1]]
            i += 2
            continue
        if arg.startswith(tuple(f"{o}=" for o in _ROOT_VALUE_OPTS)):
            head.append(arg)
        elif arg == "--json" and not seen_command:
            json_early = True
        else:
            seen_command = seen_command or not arg.startswith("-")
            rest.append(arg)
        i += 1
    if json_early:
        end = rest.index("--") if "--" in rest else len(rest)
        rest.insert(end, "--json")
    return head + rest


# Exit code when an operator change was refused because its audit record could not be written.
EXIT_AUDIT = 1
# Exit code of an unexpected internal error (a bug): a negative answer, never "ok".
EXIT_INTERNAL = 1
# Exit code when the home or a store cannot be used (read-only, full, damaged).
EXIT_START_REFUSED = 1
# What the operator does about a home on a read-only file system.
READ_ONLY_HINT = ("remount its file system read-write (the kernel remounts one read-only after "
                  "I/O errors: check the disk first); `stockade doctor` shows every check")


def _read_only_home(exc: Exception) -> Path | None:
    """The home this command runs on, when `exc` is a failure to open or write a file (an OS or
    SQLite error) and the home's file system is mounted read-only; else None."""
    import sqlite3

    from host.fsio import read_only_fs

    if not isinstance(exc, OSError | sqlite3.Error) or not _homes:
        return None
    root = _homes[-1].root
    return root if read_only_fs(root) else None


# Exit code when another process held the store's write lock past the busy timeout.
EXIT_STORE_LOCKED = 1


def _on_sigint(signum: int, frame: object) -> None:
    settle()
    raise Interrupted()


def _on_sigterm(signum: int, frame: object) -> None:
    settle()
    raise Terminated()


def _say_interrupted(terminated: bool = False) -> NoReturn:
    # One line, on a line of its own (the terminal echoed ^C where the cursor was).
    with contextlib.suppress(Exception):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr.write(TERMINATED_LINE if terminated else INTERRUPTED_LINE)
        sys.stderr.flush()
    raise SystemExit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED) from None


def main() -> None:
    # Also when `host.cli.main` is run without the console script's entry.
    install_redelivery()
    # A reader of stderr that quit early changes neither what the command does nor its exit
    # code (`host.cli.quietpipe`); installed before any handler writes to it.
    if sys.stderr is not None and not isinstance(sys.stderr, QuietPipe):
        sys.stderr = cast(TextIO, QuietPipe(sys.stderr))
    # A SIGINT this process was started with ignored stays ignored, as Python leaves it and most
    # programs do: a script's `stockade serve &` (a non-interactive shell ignores SIGINT for its
    # background jobs) was stopped by the terminal's Ctrl-C meant for the script's foreground.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # The host's log lines (`serve`'s, and any command's) are the operator's screen too: every
    # value they quote inert (DESIGN rule 12), not Python's last-resort handler writing it raw.
    logline.install()
    try:
        _run()
    finally:
        # A Ctrl-C sent again from a finalizer (`host/cli/interrupt.py`) that has not landed by
        # the command's end: the command was interrupted all the same.
        late = owed()
        if late is not None:
            _say_interrupted(late == signal.SIGTERM)


def _run() -> None:
    try:
        root(args=normalize_argv(sys.argv[1:]), prog_name="stockade")
    except Interrupted as exc:
        _say_interrupted(isinstance(exc, Terminated))
    except AuditError as exc:
        # Audit before act (rule 14): an operator change whose record cannot be written is
        # not made. One message, no traceback; a record kept from the write lock names the
        # process holding it, as any command kept from it does.
        from host.store.lockholder import store_locked

        if store_locked(exc) and not os.environ.get("STOCKADE_DEBUG"):
            sys.stderr.write(_locked())
            raise SystemExit(EXIT_STORE_LOCKED) from None
        sys.stderr.write(f"error: not done, the audit record could not be written ({exc})\n"
                         "hint: `stockade audit verify` and `stockade doctor` show what is "
                         "wrong with the store\n")
        raise SystemExit(EXIT_AUDIT) from None
    except StartRefused as exc:
        # A home or store this process cannot use (read-only, full, damaged): the operator's
        # to fix, said in one line with how, from any command.
        sys.stderr.write(f"error: {exc.message}\nhint: {exc.hint}\n")
        raise SystemExit(EXIT_START_REFUSED) from None
    except Exception as exc:
        cause = interrupt_in(exc)
        if cause is not None:  # a Ctrl-C (or SIGTERM) Python wrapped (host/cli/interrupt.py)
            _say_interrupted(isinstance(cause, Terminated))
        from host.store.base import SCHEMA_TOO_NEW_HINT, SchemaTooNew
        from host.store.lockholder import store_locked

        if isinstance(exc, SchemaTooNew) and not os.environ.get("STOCKADE_DEBUG"):
            # A home or store a newer release wrote (a downgrade): the operator's to resolve,
            # not a bug to report (it was "unexpected StoreError ... please report it").
            sys.stderr.write(f"error: {exc}\nhint: {SCHEMA_TOO_NEW_HINT}\n")
            raise SystemExit(EXIT_START_REFUSED) from None
        if store_locked(exc) and not os.environ.get("STOCKADE_DEBUG"):
            # Not a bug to report: another process (a stopped host, a long command) holds the
            # write lock. Before, "unexpected OperationalError: database is locked".
            sys.stderr.write(_locked())
            raise SystemExit(EXIT_STORE_LOCKED) from None
        read_only = _read_only_home(exc)
        if read_only is not None and not os.environ.get("STOCKADE_DEBUG"):
            # The README's promise: a home on a read-only file system is named as such. Every
            # command met it as "unexpected OperationalError: unable to open database file"
            # (SQLite cannot make host.db's WAL files there) or "unexpected OSError".
            sys.stderr.write(f"error: the home {read_only} is on a read-only file system "
                             f"({str(exc)[:300]})\nhint: {READ_ONLY_HINT}\n")
            raise SystemExit(EXIT_START_REFUSED) from None
        # The last net under "no traceback for any input": one line, and the traceback only
        # for whoever asks for it.
        if os.environ.get("STOCKADE_DEBUG"):
            raise
        sys.stderr.write(f"error: unexpected {type(exc).__name__}: {str(exc)[:300]}\n"
                         "hint: STOCKADE_DEBUG=1 shows the traceback; please report it\n")
        raise SystemExit(EXIT_INTERNAL) from None
