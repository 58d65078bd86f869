"""`stockade store status|migrate`: the host's store and its schema versions.

A home's own SQLite store creates its tables as it opens them. A PostgreSQL store several hosts
share changes its schema only here (`host.migrate`), once, from one host, when the operator says
so; a host whose schema is missing or older refuses to start and names this command.

On a home made before the embedded server's tables moved into host.db, `migrate` also moves its
server.db in (`host.mergeserver`), and `status` says where the server's data is.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail
from host.home import Home
from host.inert import host, line

if TYPE_CHECKING:
    from host.mergeserver import Merged
    from host.migrate import ComponentState

store_app = typer.Typer(help="The host's store: where it is and its schema versions.",
                        no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _where(home: Home) -> str:
    from host.store import describe

    return describe(home.host_store)


def _show(home: Home, states: list[object], title: str, json_out: bool,
          extra: dict[str, object] | None = None) -> bool:
    from host.migrate import ComponentState

    rows = [s for s in states if isinstance(s, ComponentState)]
    apart = home.server_apart
    current = all(s.current for s in rows) and not apart
    # A SQLite store creates or upgrades each component the first time a command opens it
    # (`host.store.schema.ensure_schema`); only a PostgreSQL store waits for `store migrate`.
    # A fresh home's components not yet opened were shown as needing it, exit 1.
    auto = home.store_url is None
    ready = all(s.current or (auto and (s.have or 0) < s.need) for s in rows) and not apart
    if json_out:
        emit_json({"store": _where(home), "kind": "postgresql" if home.store_url else "sqlite",
                   "current": current, "ready": ready,
                   "components": [s.to_json() for s in rows],
                   "server_data": "server.db" if apart else
                   "postgresql" if home.store_url else "host.db", **(extra or {})})
        return ready
    table = Table(title=f"{title} ({_where(home)})")
    for col in ("component", "schema", "this release", "status"):
        table.add_column(col)
    for s in rows:
        table.add_row(s.name, "-" if s.have is None else str(s.have), str(s.need),
                      host("current", "green") if s.current else
                      host("newer than this release", "red") if (s.have or 0) > s.need else
                      host("made when first used", "green") if auto and s.have is None else
                      host("upgraded when next opened with no host serving", "green")
                      if auto else
                      host("needs `stockade store migrate`", "yellow"))
    err_console.print(table)
    if apart:
        err_console.print(line(host("the embedded server's data is in server.db: ", "yellow"),
                               "its writes take three commits; `stockade store migrate` moves "
                               "it into host.db (stop the host first)"))
    return ready


@store_app.command("status")
def status(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Each component's schema version beside the one this release needs (exit 1 if one
    needs `stockade store migrate` or is newer; a SQLite home's are made or upgraded when a
    command first opens them). Reads only; creates nothing."""
    from host.migrate import store_status
    from host.store import STORE_FAILURES

    home: Home = ctx.obj
    if not home.has_host_store():
        fail(f"no store at {home.host_db}: nothing has been recorded in this home yet",
             "`stockade init` creates the home; a PostgreSQL store is named by --store")
    try:
        states = store_status(home.host_store)
    except STORE_FAILURES as exc:
        fail(f"cannot read the store at {_where(home)}: {exc}",
             "check the URL, the server, and this user's rights on the database")
    ok = _show(home, list(states), "store", json_out)
    raise typer.Exit(0 if ok else EXIT_NEGATIVE)


@store_app.command("migrate")
def migrate(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Create or upgrade every component's tables (each step once, under the store's write
    lock: two hosts migrating at once apply it once). Refuses a store from a newer release."""
    from host.migrate import store_status
    from host.store import STORE_FAILURES, SchemaInUse

    home: Home = ctx.obj
    try:
        before = store_status(home.host_store)
        states = _run_recorded(home, before)
    except SchemaInUse:
        raise  # a host serves the home: said with its own hint (stop it), not a newer store's
    except STORE_FAILURES as exc:
        fail(f"the store at {_where(home)} was not migrated: {exc}",
             "a store from a newer release needs that release; otherwise check the URL and "
             "this user's rights to create tables")
    merged = _merge_server(home) if home.server_apart else None
    _show(home, list(states), "store migrated", json_out,
          {"server_merged": None if merged is None else
           {"rows": merged.rows, "kept_as": merged.kept_as}})
    if merged is not None and not json_out:
        err_console.print(line(host("moved server.db into host.db: ", "green"),
                               f"{sum(merged.rows.values())} rows in {len(merged.rows)} tables; "
                               f"the old file is kept as {merged.kept_as}"))


def _run_recorded(home: Home, before: list[ComponentState]) -> list[ComponentState]:
    """Migrate, with the record first (rules 9 and 14: a migrate killed after its commit is
    in the chain, as a change or a change interrupted) when the store's audit table is current
    and its chain verifies; else recorded as soon as the chain can take it, afterwards (the
    audit table may be what is migrated, or the chain broken: `serve --degraded` cannot mend
    a store whose schema keeps it from starting)."""
    from host.ledger.audit import SCHEMA_COMPONENT as AUDIT
    from host.ledger.operator import append_operator, audited
    from host.ledger.records import AuditError
    from host.migrate import migrate as run
    from host.store import STORE_FAILURES

    planned = [f"{s.name} {s.have or '-'} -> {s.need}" for s in before if not s.current]
    if planned and any(s.name == AUDIT and s.current for s in before):
        ran = False
        try:
            with audited(home.ensure().host_store, "store_migrate",
                         detail=("schema " + "; ".join(planned))[:500]):
                ran = True
                return run(home.host_store)
        except AuditError:
            if ran:
                raise
    states = run(home.host_store)
    was = {s.name: s.have for s in before}
    moved = [f"{s.name} {was.get(s.name) or '-'} -> {s.have}" for s in states
             if was.get(s.name) != s.have]
    if moved:
        unrecordable: tuple[type[Exception], ...] = (AuditError, *STORE_FAILURES)
        try:
            append_operator(home.ensure().host_store, "store_migrate",
                            detail=("schema " + "; ".join(moved))[:500])
        except unrecordable as exc:
            err_console.print(line(host("migrated, but the audit record of it could not be "
                                        "written: ", "yellow"), str(exc)))
    return states


def _merge_server(home: Home) -> Merged:
    """Move the home's server.db into host.db (`host.mergeserver`), audited before it acts."""
    import sqlite3

    from host.ledger.lease import LeaseError
    from host.ledger.operator import audited
    from host.mergeserver import MergeRefused, merge_server_db
    from host.store import StoreError

    try:
        with audited(home.host_store, "store_merge_server",
                     detail="the embedded server's server.db into host.db") as act:
            merged = merge_server_db(home)
            if merged is None:  # gone meanwhile: another migrate moved it
                raise LeaseError("server.db was moved by another `stockade store migrate`")
            act.note(detail=f"{sum(merged.rows.values())} rows; old file kept as "
                            f"{merged.kept_as}")
            return merged
    except LeaseError as exc:  # a refusal (1), not the operator's input error (2)
        fail(str(exc), "stop `stockade serve` on this home, then run this again", EXIT_NEGATIVE)
    except MergeRefused as exc:
        fail(str(exc), "move server.db aside (keep it: an older release may have made it, or "
                       "it is a restored copy); host.db's data is then served again",
             EXIT_NEGATIVE)
    except (sqlite3.Error, StoreError) as exc:
        fail(f"server.db was not moved into host.db (nothing changed): {exc}",
             "`stockade doctor` checks both files")


def register(root: typer.Typer) -> None:
    root.add_typer(store_app, name="store")
