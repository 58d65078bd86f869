"""`stockade policy fmt`: canonical form for policy files, like `opa fmt` / `gofmt`.

Default: rewrite each file that is not canonical (atomically). `--check`: exit 1 if any is not.
`--diff`: print a unified diff of what would change, write nothing, exit 1 if anything would.
`--list`: print the names of the files that would change, write nothing. `--json`: one document
on stdout with each file's result.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from host.cli.output import EXIT_NEGATIVE, EXIT_OK, emit_json, err_console, fail
from host.cli.policy_cmd import _print_findings
from host.cli.policy_cmd import app as policy_app
from host.fsio import flocked
from host.inert import host, line, visible
from policies.fmt import format_policy
from policies.loader import parse_text, read_file


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> str:
    # As the loader reads a policy file (a regular file, read up to its cap): a FIFO blocked
    # fmt, and a file of any size was read whole before its size was checked.
    text, errs = read_file(path)
    if text is None:
        fail(f"{path}: {errs[0].message if errs else 'cannot read'}",
             "fmt rewrites policy files, not links/folders")
    return text


@policy_app.command("fmt")
def fmt_cmd(
    files: Annotated[list[Path], typer.Argument(help="Policy files to rewrite in canonical form.")],
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if not canonical.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Print what would change; write "
                                                      "nothing.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="Print the files that would change; "
                                                       "write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output on stdout.")] = False,
) -> None:
    """Rewrite files in canonical form (atomically), or --check / --diff / --list them."""
    write = not (check or diff or list_)
    results: list[dict[str, Any]] = []
    for path in files:
        with _folder_lock(path) if write else contextlib.nullcontext():
            _fmt_one(path, write, diff, list_, as_json, results)
    if as_json:
        emit_json({"files": results})
    dirty = any(not r["canonical"] for r in results)
    raise typer.Exit(EXIT_NEGATIVE if ((check or diff) and dirty) else EXIT_OK)



def _folder_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """Rewrite under the flock `policy add` holds on a home's policy folder across its check
    and copy (`Home.policy_lock`): a file replaced meanwhile is not written back over with its
    old text, formatted. Any other folder is locked too, harmlessly (nobody else takes it)."""
    return flocked(path.parent) if path.parent.is_dir() else contextlib.nullcontext()


def _fmt_one(path: Path, write: bool, diff: bool, list_: bool, as_json: bool,
             results: list[dict[str, Any]]) -> None:
    text = _read(path)
    src, findings = parse_text(text, str(path))
    if src.model is None:
        _print_findings(findings)
        fail(f"{path} does not parse; fmt only formats valid files", "fix the errors above")
    canon = format_policy(src.model, text)
    patch = "".join(difflib.unified_diff(
        text.splitlines(keepends=True), canon.splitlines(keepends=True),
        fromfile=f"{path} (as written)", tofile=f"{path} (canonical)"))
    results.append({"file": str(path), "canonical": canon == text,
                    "written": write and canon != text, "diff": patch})
    if canon == text:
        return
    if write:
        _atomic_write(path, canon)
    if as_json:
        return
    # The file's name and lines are the policy author's text: inert on the screen (DESIGN
    # rule 12; TOML lets a comment or string hold C1 controls and bidi overrides, a file name
    # anything but "/"). `--json` keeps them exact.
    if diff:
        typer.echo(_inert_lines(patch), nl=False)
    elif list_:
        typer.echo(_inert_lines(str(path) + "\n"), nl=False)
    else:
        err_console.print(line(str(path), host(": formatted" if write else ": not canonical")))


def _inert_lines(text: str) -> str:
    """`text` line by line, every control, format or bidi character shown as an escape and no
    line cut (the file is capped at MAX_FILE_BYTES; an escape is at most 10 characters)."""
    return "\n".join(visible(ln, limit=10 * len(ln) + 1) for ln in text.split("\n"))


def register(root: typer.Typer) -> None:
    """The command hangs on the `policy` group (`host.cli.policy_cmd`)."""
