"""`stockade app new`, `app package` and `app sign`: the app author's commands, from a folder to
a signed zip. None of them reads or writes a home.

Commands of the `app` group (`app_common.app_app`); `app_cmd.py` imports this module before its
own commands, so `stockade app --help` lists them in the order they always had. `_read` is here
too: every command that takes a package (install, update, consent) reads it the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from host.apps.package_store import write_atomic
from host.apps.packages import (
    Package,
    PackageError,
    build_zip,
    package_folder,
    read_package,
)
from host.apps.publisher import PublisherError, load_private_key, sign_package
from host.cli.app_common import JsonFlag, app_app, fail_quoting
from host.cli.output import emit_json, err_console, fail
from host.inert import host, line


def _read(path: Path) -> Package:
    try:
        return read_package(path)
    except PackageError as exc:  # it quotes the package's own text: never begins a row
        fail_quoting(str(exc), "fix the package and try again; nothing was installed or "
                     "changed")



@app_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="App id for the new app, e.g. agent-sync.")],
    dir_: Annotated[Path | None, typer.Option("--dir", help="Where to create it.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Scaffold a working app: manifest, module and a test using the app-author harness."""
    from host.apps.scaffold import ScaffoldError, scaffold

    target = dir_ if dir_ is not None else Path.cwd() / name
    try:
        files = scaffold(name, target)
    except ScaffoldError as exc:
        fail(str(exc), "choose another name or an empty folder")
    err_console.print(f"created {target} ({len(files) - 1} files) and the operator rule it needs, "
                      f"{files[-1].name}", highlight=False)
    err_console.print(f"test:    python -m pytest {target} (pytest comes with Stockade's [test] "
                      f"extra: pip install -e '.[test]' in its checkout)\n"
                      f"package: stockade app package {target}\n"
                      f"policy:  stockade policy add {files[-1]}", highlight=False, markup=False)
    if json_out:
        emit_json({"dir": str(target), "files": [str(f) for f in files]})


@app_app.command("package")
def package(
    src: Annotated[Path, typer.Argument(help="The app folder.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Zip to write.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write a deterministic zip whose manifest records the content hash."""
    from host.apps.handlers import EVENT_HANDLERS, check_handlers, handler_for, suggestion

    try:
        pkg, data = package_folder(src)
    except PackageError as exc:
        fail(str(exc), "fix the folder and package again")
    handlers = check_handlers(pkg)
    for name in handlers.undeclared:
        err_console.print(line(host("warning:", "yellow"), f" {name} handles "
                               f"{EVENT_HANDLERS[name]}, which app.toml's `events` does not "
                               "list: it is never called"))
    _, entry_class = pkg.manifest.entry_parts()
    for event in handlers.unhandled:
        err_console.print(line(host("warning:", "yellow"), f" app.toml lists {event}, but "
                               f"{entry_class} has no {handler_for(event)}(self, ctx, event): "
                               "the host delivers it and nothing handles it"))
    if handlers.unknown:
        for name in handlers.unknown:
            err_console.print(line(host("error:", "bold red"),
                                   f" {name} is no event handler: {suggestion(name)}"))
        fail(f"{len(handlers.unknown)} handler(s) would never be called",
             "rename them to on_<event> (dots and dashes become underscores); nothing written")
    target = out or Path.cwd() / f"{pkg.app_id}-{pkg.manifest.version}.zip"
    try:
        write_atomic(target, data)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}", "choose another -o path")
    # The path may be a name the package's author chose (signed in place): inert (rule 12).
    err_console.print(line(f"wrote {target} ({len(data)} bytes), content hash "
                           f"{pkg.content_hash}"))
    if json_out:
        emit_json({"path": str(target), "app_id": pkg.app_id, "version": pkg.manifest.version,
                   "content_hash": pkg.content_hash})


@app_app.command("sign")
def sign(
    pkg_path: Annotated[Path, typer.Argument(help="A packaged app (.zip).")],
    key: Annotated[Path, typer.Option("--key", help="Publisher private key file.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Default: in place.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add the publisher's Ed25519 signature over the content hash (a SIGNATURE member)."""
    if pkg_path.is_dir():
        fail(f"{pkg_path} is a folder", "package it first: stockade app package DIR")
    pkg = _read(pkg_path)
    try:
        priv = load_private_key(key)
    except PublisherError as exc:
        fail(str(exc), "pass the private key written by `stockade keys generate`")
    signed = Package(manifest=pkg.manifest, files=pkg.files, content_hash=pkg.content_hash,
                     signature=sign_package(pkg, priv), source=pkg.source)
    target = out or pkg_path
    try:
        write_atomic(target, build_zip(signed))
    except OSError as exc:  # the operator's path: said so, never "unexpected ... report it"
        fail(f"cannot write {target}: {exc.strerror}", "choose another -o path")
    err_console.print(line(f"signed {target} ({pkg.content_hash})"))  # an author's file name
    if json_out:
        emit_json({"path": str(target), "content_hash": pkg.content_hash})
