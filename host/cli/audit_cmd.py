"""`stockade audit`: verify the hash-chained audit log, read its newest records, show one.

Human output goes to stderr with every app-derived string made inert (`host.inert.visible`:
controls, format and blank-looking characters escaped), each `tail` line cut to the screen and
each `show` field in its column, so a record cannot print a fake line, move the cursor or wrap
into a row of its own; `--json` writes only JSON to stdout.
"""
from __future__ import annotations

import datetime as _dt
import sqlite3
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from host.cli.output import EXIT_NEGATIVE, emit_json, err_console, fail
from host.clock import SystemClock
from host.fsio import read_only_fs
from host.home import Home
from host.inert import field_grid, one_row, visible
from host.ledger.audit import AuditEntry, AuditError, AuditLog, open_readonly
from host.store import StoreError, integrity_problem

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine output on stdout.")]

audit_app = typer.Typer(help="Verify and read the audit log (HOME/host.db).",
                        no_args_is_help=True)

# Most records `tail` prints at once: guards the terminal (and a pipe) from a mistyped -n.
MAX_TAIL = 10_000
# Largest record number: SQLite's integers are 64-bit signed (a larger one is no record, and
# would reach the query as an OverflowError instead of a usage error).
MAX_SEQ = 2**63 - 1
# Longest problem, break or note `verify` prints: guards the screen against a verdict quoting
# a forged row at length (the host's own texts are a few hundred characters).
MAX_SAID = 2_000


def _open(home: Home) -> AuditLog:
    if not home.has_host_store():
        fail(f"no store at {home.host_db}: nothing has been recorded in this home yet",
             "pass --home (or set STOCKADE_HOME) to the folder the host runs with")
    try:
        return open_readonly(home.host_store, SystemClock())
    except (StoreError, AuditError, OSError) as exc:
        fail(f"cannot open {home.host_db}: {exc}", "check the file's permissions")


def _unreadable(exc: Exception, home: Home) -> NoReturn:
    # The store opens lazily: a host.db that is no database (damaged, a FIFO put in its
    # place) is met at the first read, and is said as such, never as an unexpected error.
    if read_only_fs(home.root):  # SQLite cannot make host.db's WAL files: not a permission
        fail(f"cannot read the audit log: {exc}: the file system of {home.root} is read-only",
             "remount it read-write (or read a copy of host.db and audit.anchor made "
             "elsewhere); `stockade doctor` checks the store", EXIT_NEGATIVE)
    fail(f"cannot read the audit log: {exc}", "check the file's permissions; `stockade "
         "doctor` checks the store", EXIT_NEGATIVE)


def _say(text: str) -> None:
    # markup/highlight off: record text is data, never rich markup.
    err_console.print(text, markup=False, highlight=False)


def _when(ts: float) -> str:
    try:
        when = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    except (OverflowError, ValueError, OSError):  # a valid record's quota time past year 9999
        return f"{ts!r} (epoch seconds)"
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _s(v: Any) -> str:
    return visible(v, limit=sys.maxsize)


def _said(v: Any) -> str:
    """A verdict's text: the host's words, but they may quote a forged row (escaped and cut)."""
    return visible(v, limit=MAX_SAID)


def _line(e: AuditEntry) -> str:
    b = e.body
    verdict = ""
    if "allowed" in b:
        verdict = "allow" if b["allowed"] else "DENY"
    elif "ok" in b:
        verdict = "ok" if b["ok"] else "FAIL"
    who = "/".join(_s(b[k]) for k in ("app_id", "install_id") if k in b)
    parts = [f"{e.seq:>6}", _when(e.ts), _s(b.get("kind", "?")), verdict, who,
             _s(b.get("action") or b.get("event") or "")]
    if e.invalid is not None:  # a forged or damaged row: said first, its text escaped and cut
        parts.append(f"— {_s(e.invalid)}")
    if "code" in b and b["code"] not in ("allow", "ok"):
        parts.append(_s(b["code"]))
    if "ref_seq" in b:
        parts.append(f"(of {int(b['ref_seq'])})")
    if b.get("refunded"):
        parts.append("refunded")
    if b.get("reconciled"):
        parts.append("reconciled")
    if "op_id" in b:
        parts.append(f"op={_s(b['op_id'])}")
    if "actor" in b:
        parts.append(f"by {_s(b['actor'])}")
    for k in ("message", "detail"):
        if k in b:
            parts.append(f"— {_s(b[k])}")
    return "  ".join(p for p in parts if p)


@audit_app.command("verify")
def verify(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Check the whole chain and its anchor. Exit 0 if intact, 1 naming the first bad record."""
    home: Home = ctx.obj
    problem = (integrity_problem(home.host_db)
               if home.store_url is None and home.host_db.exists() else None)
    if problem is not None:
        fail(f"host.db is damaged ({problem}); the audit chain cannot be read",
             "restore host.db and audit.anchor from a backup; `stockade doctor` shows every "
             "check", EXIT_NEGATIVE)
    log = _open(home)
    try:
        # On stderr, as every human line (a long chain's walk takes a while): `--json` is alone
        # on stdout.
        result = log.verify(progress=lambda done, total: _say(
            f"verifying: {done:,} of {total:,} records walked"))
    except (AuditError, StoreError, OSError, sqlite3.DatabaseError) as exc:
        _unreadable(exc, home)
    if json_out:
        emit_json(result.to_json())
    for brk in result.breaks:
        _say(f"earlier break, acknowledged by a --degraded start: {_said(brk)}")
    if result.ok:
        anchor = f", anchored at seq {result.anchor.seq}" if result.anchor else ""
        scope = " in its newest segment" if result.breaks else ""
        _say(f"audit log intact{scope}: {result.records} records{anchor}")
        for note in result.notes:
            _say(f"note: {_said(note)}")
        raise typer.Exit(0)
    where = f"record {result.first_bad_seq}: " if result.first_bad_seq is not None else ""
    _say(f"audit log FAILED verification: {where}{_said(result.problem)}")
    _say(f"({result.records} records verified before it; the log may have been tampered with "
         "— keep a copy of host.db and audit.anchor before anything else writes to them)")
    raise typer.Exit(EXIT_NEGATIVE)


@audit_app.command("tail")
def tail(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--lines", min=1, max=MAX_TAIL,
                                   help="How many of the newest records.")] = 20,
    json_out: JsonFlag = False,
) -> None:
    """The newest records, oldest first."""
    log = _open(ctx.obj)
    try:
        entries = log.tail(n)
    except (AuditError, StoreError, OSError, sqlite3.DatabaseError) as exc:
        _unreadable(exc, ctx.obj)
    if json_out:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        _say("the audit log is empty")
    for e in entries:
        err_console.print(one_row(Text(_line(e)), err_console.width), highlight=False)


@audit_app.command("show")
def show(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="The record's sequence number.", min=1,
                                       max=MAX_SEQ)],
    json_out: JsonFlag = False,
) -> None:
    """One record with its chain hashes."""
    log = _open(ctx.obj)
    try:
        e = log.show(seq)
    except (AuditError, StoreError, OSError, sqlite3.DatabaseError) as exc:
        _unreadable(exc, ctx.obj)
    if e is None:
        # Not found is exit 2 in every command (the README's contract).
        fail(f"no audit record {seq}", "see `stockade audit tail` for the newest ones")
    if json_out:
        emit_json(e.to_json())
        return
    rows = [("seq", str(e.seq)), ("time", _when(e.ts))]
    if e.invalid is not None:
        rows.append(("INVALID", _s(e.invalid)))
    for k in sorted(e.body):
        v = e.body[k]
        if k == "quota" and isinstance(v, list):
            for q in v:
                nxt = q.get("next_free_at")
                free = f", next free {_when(nxt)}" if isinstance(nxt, (int, float)) else ""
                rows.append(("quota", f"{_s(q.get('key'))}: {_s(q.get('used'))}/"
                             f"{_s(q.get('limit'))} per {_s(q.get('window_s'))}s{free}"))
        elif isinstance(v, list):
            rows.append((_s(k), ", ".join(_s(x) for x in v)))
        else:
            rows.append((_s(k), _s(v)))
    rows += [("prev_hash", _s(e.prev_hash)), ("hash", _s(e.hash))]  # a forged row's too
    # In a grid: a long value wraps inside its column, never to column 0 of the next row.
    err_console.print(field_grid(((k, Text(v)) for k, v in rows), indent=0), highlight=False)


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.add_typer(audit_app, name="audit")
