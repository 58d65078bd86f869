"""`stockade app`: package, sign, install (disclosure + consent), and the app lifecycle.

Every command takes `--json`: then stdout holds exactly one JSON document and everything for
humans (disclosure tables, prompts, progress) goes to stderr. Exit codes: 0 ok, 1 a negative
answer (declined, an update that waits for consent, tampering found), 2 bad input, 3
confirmation required (no TTY and no --grant, or an unsigned package without --allow-unsigned).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from host.apps import lifecycle_seams
from host.apps.appdiff import diff_manifests, grants_after, render_diff
from host.apps.consent import (
    ConsentDeclined,
    ConsentError,
    ConsentRequired,
    guardrail_problems,
    is_interactive,
    make_consent,
    resolve_grants,
    verify_install,
)
from host.apps.disclosure import Disclosure, build_disclosure, load_policy_view, render_disclosure
from host.apps.installs import (
    InstallError,
    InstallRecord,
    InstallStore,
)
from host.apps.lineage import Lineage, LineageError, binding_of
from host.apps.manifest import Manifest, SettingValue
from host.apps.operations import audit_transfer, default_settings, install_package
from host.apps.packages import (
    Package,
    PackageError,
    build_zip,
    package_folder,
    read_package,
    store_package,
    write_atomic,
)
from host.apps.publisher import (
    PublisherError,
    SignatureCheck,
    TrustStore,
    check_signature,
    load_private_key,
    sign_package,
)
from host.cli import app_data_cmd  # noqa: F401  (registers `app logs` and `app settings`)
from host.cli.app_common import (
    TRANSFER_HINT,
    AllowUnsigned,
    AppRef,
    GrantOpt,
    JsonFlag,
    RestAsOpt,
    TransferOpt,
    app_app,
    check_lineage,
    operator_name,
    resolve,
    rest_identity,
    store_only,
)
from host.cli.output import (
    EXIT_CONFIRM,
    EXIT_NEGATIVE,
    EXIT_USAGE,
    emit_json,
    err_console,
    fail,
)
from host.clock import SystemClock
from host.home import Home
from host.keys.keyring import Keyring
from host.supervise.status import is_fresh, read_status


def _confirm(question: str, default: bool) -> bool:
    # err=True: prompts are for humans and must never pollute --json stdout.
    return bool(typer.confirm(question, default=default, err=True))


def _now() -> float:
    return SystemClock().now()


def _read(path: Path) -> Package:
    try:
        return read_package(path)
    except PackageError as exc:
        fail(str(exc), "fix the package and try again; nothing was installed or changed")


def _signature(home: Home, pkg: Package) -> SignatureCheck:
    try:
        return check_signature(pkg, TrustStore(home.trust_dir))
    except PublisherError as exc:
        fail(str(exc), "nothing was installed or changed", EXIT_NEGATIVE)


def _require_signed(sig: SignatureCheck, allow_unsigned: bool) -> None:
    if sig.status != "trusted" and not allow_unsigned:
        what = "unsigned" if sig.status == "unsigned" else f"signed by an unknown key {sig.kid}"
        fail(f"the package is {what}",
             "trust its publisher (`stockade keys trust KEY.pub --name NAME`) or pass "
             "--allow-unsigned if you accept code nobody you trust vouches for",
             EXIT_CONFIRM)


def _open(home: Home) -> tuple[InstallStore, Keyring]:
    home.ensure()
    return InstallStore(home.host_db), Keyring.open(home.keys_dir)


def _disclose(home: Home, manifest: Manifest, content_hash: str, sig: SignatureCheck,
              rec: InstallRecord | None = None, title: str = "Install",
              rest_as: str | None = None) -> Disclosure:
    from host.gate.rest_routes import route_actions

    policy, why = load_policy_view(home.policies_dir)
    users = lifecycle_seams.count_app_users(home, rec) if rec is not None else None
    d = build_disclosure(manifest, content_hash, sig, policy, app_users=users, rest_as=rest_as,
                         route_actions=route_actions)
    render_disclosure(d, err_console, title=title)
    if why:
        err_console.print(f"[yellow]{why}[/]", highlight=False)
    return d


def _refuse_guardrails(manifest: Manifest) -> None:
    """Refuse at consent what no consent may grant (admin-class roles), naming it."""
    problems = guardrail_problems(manifest)
    if problems:
        for p in problems:
            err_console.print(f"[bold red]refused:[/] {p}", highlight=False)
        fail(f"{manifest.id} {manifest.version} cannot be consented to: "
             f"{len(problems)} guardrail violation(s)",
             "the publisher must remove admin-class roles from the manifest", EXIT_NEGATIVE)


def _grants(asked: frozenset[str], flags: list[str] | None, *,
            ask_about: frozenset[str] | None = None,
            already: frozenset[str] = frozenset()) -> frozenset[str]:
    try:
        return resolve_grants(asked, flags or [], interactive=is_interactive(),
                              confirm=_confirm, ask_about=ask_about, already=already)
    except ConsentError as exc:
        fail(str(exc), "name only permissions the package asks for")
    except ConsentRequired as exc:
        fail(str(exc), "", EXIT_CONFIRM)
    except ConsentDeclined as exc:
        fail(str(exc), "", EXIT_NEGATIVE)


def _confirm_widening(widens: bool) -> None:
    """An update that widens power without asking for a new permission (roles, events,
    secrets, a downgrade) still needs a yes: no grant question would otherwise be put."""
    if not widens:
        return
    if not is_interactive():
        fail("this update widens what the app may do (see the diff above)",
             "approve it by naming the grants it keeps with --grant", EXIT_CONFIRM)
    if not _confirm("Approve the wider powers shown above?", False):
        fail("not updated: you declined", "", EXIT_NEGATIVE)


def _default_settings(manifest: Manifest,
                      keep: dict[str, SettingValue] | None = None) -> dict[str, SettingValue]:
    return default_settings(manifest, keep)


def _policy_revision(home: Home) -> str | None:
    policy, _ = load_policy_view(home.policies_dir)
    return None if policy is None else policy.revision


# ---- package / sign / new ----------------------------------------------------------------------

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
    err_console.print(f"created {target} ({len(files)} files); next: stockade app package "
                      f"{target}", highlight=False)
    if json_out:
        emit_json({"dir": str(target), "files": [str(f) for f in files]})


@app_app.command("package")
def package(
    src: Annotated[Path, typer.Argument(help="The app folder.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Zip to write.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write a deterministic zip whose manifest records the content hash."""
    try:
        pkg, data = package_folder(src)
    except PackageError as exc:
        fail(str(exc), "fix the folder and package again")
    target = out or Path.cwd() / f"{pkg.app_id}-{pkg.manifest.version}.zip"
    try:
        write_atomic(target, data)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}", "choose another -o path")
    err_console.print(f"wrote {target} ({len(data)} bytes), content hash {pkg.content_hash}",
                      highlight=False)
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
    write_atomic(target, build_zip(signed))
    err_console.print(f"signed {target} ({pkg.content_hash})", highlight=False)
    if json_out:
        emit_json({"path": str(target), "content_hash": pkg.content_hash})


# ---- install -----------------------------------------------------------------------------------


@app_app.command("install")
def install(
    ctx: typer.Context,
    pkg_path: Annotated[Path, typer.Argument(help="A packaged app (.zip) or an app folder.")],
    grant: GrantOpt = None,
    allow_unsigned: AllowUnsigned = False,
    transfer: TransferOpt = False,
    rest_as: RestAsOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Show what the app can do, ask for consent, and install it."""
    home: Home = ctx.obj
    pkg = _read(pkg_path)  # nothing touches HOME before the package is fully validated
    sig = _signature(home, pkg)
    if home.host_db.exists():
        with InstallStore(home.host_db) as probe:
            if probe.by_app(pkg.app_id) is not None:
                fail(f"app {pkg.app_id!r} is already installed",
                     f"use `stockade app update {pkg.app_id} {pkg_path}`")
    identity = rest_identity(home, None, rest_as)
    disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rest_as=identity)
    _refuse_guardrails(pkg.manifest)
    _require_signed(sig, allow_unsigned)
    check_lineage(home, pkg.app_id, sig, transfer)
    grants = _grants(pkg.manifest.asked, grant)
    try:
        rec = install_package(home.ensure(), pkg, sig, grants,
                              policy_revision=disclosure.policy_revision, clock=SystemClock(),
                              transfer=transfer, actor=operator_name(), rest_as=identity)
    except InstallError as exc:
        fail(str(exc))
    except LineageError as exc:
        fail(str(exc), TRANSFER_HINT, EXIT_NEGATIVE)
    denied = sorted(pkg.manifest.asked - grants)
    err_console.print(f"[green]installed[/] {rec.app_id} {rec.version} as {rec.install_id}; "
                      f"granted: {', '.join(sorted(grants)) or 'nothing'}"
                      + (f"; not granted (PermissionDenied): {', '.join(denied)}" if denied
                         else ""), highlight=False)
    if json_out:
        emit_json({"install": rec.to_public_dict(), "disclosure": disclosure.to_dict()})


# ---- list / info / enable / disable ----------------------------------------------------------

def _checked(store: InstallStore, keyring: Keyring, rec: InstallRecord) -> dict[str, Any]:
    check = verify_install(rec, store, keyring)
    current = store.get(rec.install_id) or rec
    d = current.to_public_dict()
    d["consent_ok"] = check.ok
    d["consent_problem"] = check.problem
    return d


@app_app.command("list")
def list_apps(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Installed apps (consent re-verified; a tampered install is disabled)."""
    home: Home = ctx.obj
    store, keyring = _open(home)
    with store:
        rows = [_checked(store, keyring, r) for r in store.list()]
    live = read_status(home.host_db)
    now = _now()
    for r in rows:
        st = live.get(r["install_id"])
        # Only a serving host's figures: a stopped host's last row says nothing about now.
        r["running"] = st if st is not None and is_fresh(st, now) else None
    if json_out:
        emit_json(rows)
        return
    if not rows:
        err_console.print("no apps installed")
    for r in rows:
        state = "enabled" if r["enabled"] else f"disabled ({r['disabled_reason'] or 'operator'})"
        pend = f", update {r['pending_update']['version']} pending" if r["pending_update"] else ""
        err_console.print(f"{r['app_id']} {r['version']}  {state}{pend}  grants: "
                          f"{', '.join(r['grants']) or '-'}", highlight=False)
        if r["running"] is not None:
            err_console.print(f"    {_running_line(r['running'])}", highlight=False, markup=False)


def _running_line(st: dict[str, Any]) -> str:
    """One line of a running app's state: what `stockade serve` is doing with it now."""
    state = str(st["state"])
    if state == "backoff":
        state = f"restarting in {st['backoff_s']:.1f}s (backoff)"
    parts = [f"{state} on host pid {st['host_pid']}", f"restarts {st['restarts']}",
             f"events {st['events_done']} ok / {st['events_failed']} failed",
             f"queued {st['queued']}", f"dropped {st['dropped']}"]
    if st.get("refusal_stops"):
        parts.append(f"stopped {st['refusal_stops']}x for too many refusals")
    return ", ".join(parts)


@app_app.command("info")
def info(ctx: typer.Context, ref: AppRef, json_out: JsonFlag = False) -> None:
    """One app: version, grants, settings (secrets masked), pending update, consent status."""
    home: Home = ctx.obj
    store, keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        d = _checked(store, keyring, rec)
        d["app_users"] = lifecycle_seams.count_app_users(home, rec)
    if json_out:
        emit_json(d)
        return
    for key in ("app_id", "name", "version", "install_id", "generation", "enabled",
                "disabled_reason", "grants", "denied", "events", "settings", "app_user_id",
                "app_users", "publisher", "consent_ok", "consent_problem", "pending_update"):
        err_console.print(f"{key}: {d[key]}", highlight=False)


@app_app.command("enable")
def enable(ctx: typer.Context, ref: AppRef, json_out: JsonFlag = False) -> None:
    """Enable an app (refused when its consent record does not verify)."""
    store, keyring = _open(ctx.obj)
    with store:
        rec = resolve(store, ref)
        check = verify_install(rec, store, keyring, disable=False)
        if not check.ok:
            fail(f"{rec.app_id}: {check.problem}",
                 f"re-confirm its permissions with `stockade app consent {rec.app_id}`",
                 EXIT_NEGATIVE)
        store.set_enabled(rec.install_id, True)
        rec = store.get(rec.install_id) or rec
    err_console.print(f"enabled {rec.app_id}", highlight=False)
    if json_out:
        emit_json(rec.to_public_dict())


@app_app.command("disable")
def disable(ctx: typer.Context, ref: AppRef, json_out: JsonFlag = False) -> None:
    """Disable an app: its generation is bumped, so every token it holds stops working."""
    store = store_only(ctx.obj)
    with store:
        rec = resolve(store, ref)
        store.set_enabled(rec.install_id, False, reason="disabled by the operator")
        rec = store.get(rec.install_id) or rec
    err_console.print(f"disabled {rec.app_id} (generation {rec.generation})", highlight=False)
    if json_out:
        emit_json(rec.to_public_dict())


# ---- update / consent -------------------------------------------------------------------------

@app_app.command("update")
def update(
    ctx: typer.Context,
    ref: AppRef,
    pkg_path: Annotated[Path, typer.Argument(help="The new package.")],
    allow_unsigned: AllowUnsigned = False,
    json_out: JsonFlag = False,
) -> None:
    """Update an app. Less access applies at once; more access waits for `app consent`."""
    home: Home = ctx.obj
    pkg = _read(pkg_path)
    sig = _signature(home, pkg)
    store, keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        if pkg.app_id != rec.app_id:
            fail(f"the package is app {pkg.app_id!r}, not {rec.app_id!r}",
                 "install it as a separate app instead")
        if pkg.content_hash == rec.package_hash:
            err_console.print(f"{rec.app_id} is already at this package ({rec.version})")
            if json_out:
                emit_json({"status": "unchanged", "install": rec.to_public_dict()})
            return
        disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rec, title="Update")
        _require_signed(sig, allow_unsigned)
        diff = diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                              new_publisher=sig.to_dict())
        render_diff(diff, disclosure, err_console)
        _refuse_guardrails(pkg.manifest)
        path = store_package(home.packages_dir, pkg)
        if Lineage(home.host_db).bound(rec.app_id) not in (None, binding_of(sig.to_dict())):
            err_console.print(
                "[bold red]this package comes from another publisher than the one the app id "
                f"is bound to[/]: approving it needs `stockade app consent {rec.app_id} "
                "--transfer-publisher`", highlight=False)
        if diff.needs_consent:
            store.set_pending(rec.install_id, manifest=pkg.manifest,
                              package_hash=pkg.content_hash, package_path=path,
                              publisher=sig.to_dict(), diff=diff.to_dict())
            rec = store.get(rec.install_id) or rec
            err_console.print(
                f"[yellow]update to {pkg.manifest.version} is PENDING[/]: it widens what the "
                f"app may do. {rec.app_id} {rec.version} keeps running. Review and approve with "
                f"`stockade app consent {rec.app_id}`", highlight=False)
            if json_out:
                emit_json({"status": "pending", "diff": diff.to_dict(),
                           "install": rec.to_public_dict(),
                           "disclosure": disclosure.to_dict()})
            raise typer.Exit(EXIT_NEGATIVE)
        grants = grants_after(rec.grants, pkg.manifest.asked)
        consent = make_consent(
            keyring, install_id=rec.install_id, app_id=rec.app_id,
            version=pkg.manifest.version, package_hash=pkg.content_hash,
            manifest_hash=pkg.manifest.manifest_hash(), grants=grants,
            policy_revision=disclosure.policy_revision, now=_now(), kind="update")
        store.apply_update(rec.install_id, manifest=pkg.manifest,
                           package_hash=pkg.content_hash, package_path=path, grants=grants,
                           settings=_default_settings(pkg.manifest, dict(rec.settings)),
                           publisher=sig.to_dict(), consent=consent, diff=diff.to_dict())
        rec = store.get(rec.install_id) or rec
    err_console.print(f"[green]updated[/] {rec.app_id} to {rec.version}; grants: "
                      f"{', '.join(sorted(rec.grants)) or 'nothing'}", highlight=False)
    if json_out:
        emit_json({"status": "applied", "diff": diff.to_dict(), "install": rec.to_public_dict()})


@app_app.command("consent")
def consent(
    ctx: typer.Context,
    ref: AppRef,
    grant: GrantOpt = None,
    reject: Annotated[bool, typer.Option("--reject", help="Discard the pending update.")] = False,
    transfer: TransferOpt = False,
    rest_as: RestAsOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Approve a pending update (shows the diff), or re-confirm the current version's grants."""
    home: Home = ctx.obj
    store, keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        identity = rest_identity(home, rec.rest_as, rest_as)
        pending = rec.pending
        if reject:
            if pending is None:
                fail(f"{rec.app_id} has no pending update", "nothing to reject")
            store.clear_pending(rec.install_id)
            err_console.print(f"discarded pending update {pending.version} of {rec.app_id}",
                              highlight=False)
            if json_out:
                emit_json({"status": "rejected", "version": pending.version})
            return
        # Re-read the package from disk: the consent must bind what will actually run, not
        # whatever the database row says (it may be the thing that was tampered with).
        pkg = _read(pending.package_path if pending is not None else rec.package_path)
        sig = _signature(home, pkg)
        title = "Pending update" if pending is not None else "Re-confirm"
        disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rec, title=title,
                               rest_as=identity)
        diff = diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                              new_publisher=sig.to_dict())
        if pending is not None:
            render_diff(diff, disclosure, err_console)
            if guardrail_problems(pkg.manifest):
                store.clear_pending(rec.install_id)
            _refuse_guardrails(pkg.manifest)
            ask = pkg.manifest.asked if diff.publisher_changed else diff.added
            already = frozenset() if diff.publisher_changed else grants_after(
                rec.grants, pkg.manifest.asked)
            if not ask and not grant:
                _confirm_widening(diff.needs_consent)
            grants = _grants(pkg.manifest.asked, grant, ask_about=ask, already=already)
            kind = "update"
        else:
            grants = _grants(pkg.manifest.asked, grant)
            kind = "regrant"
        # The package that will run must come from the publisher the app id is bound to, or
        # the operator hands the id over explicitly (audited) — DESIGN rule 11.
        try:
            moved = Lineage(home.host_db).claim(rec.app_id, sig.to_dict(), transfer=transfer)
        except LineageError as exc:
            fail(str(exc), TRANSFER_HINT, EXIT_NEGATIVE)
        if moved is not None:
            audit_transfer(home, moved, rec.install_id, SystemClock(), operator_name())
        record = make_consent(
            keyring, install_id=rec.install_id, app_id=rec.app_id,
            version=pkg.manifest.version, package_hash=pkg.content_hash,
            manifest_hash=pkg.manifest.manifest_hash(), grants=grants,
            policy_revision=disclosure.policy_revision, now=_now(), kind=kind,
            rest_as=identity)
        store.apply_update(rec.install_id, manifest=pkg.manifest,
                           package_hash=pkg.content_hash,
                           package_path=pending.package_path if pending else rec.package_path,
                           grants=grants,
                           settings=_default_settings(pkg.manifest, dict(rec.settings)),
                           publisher=sig.to_dict(), consent=record, diff=diff.to_dict(),
                           hook="update")
        rec = store.get(rec.install_id) or rec
    err_console.print(f"[green]consented[/]: {rec.app_id} {rec.version} grants "
                      f"{', '.join(sorted(rec.grants)) or 'nothing'}", highlight=False)
    if not rec.enabled:
        err_console.print(f"{rec.app_id} is disabled; enable it with `stockade app enable "
                          f"{rec.app_id}`", highlight=False)
    if json_out:
        emit_json({"status": "consented", "install": rec.to_public_dict()})


# ---- uninstall / logs / settings ----------------------------------------------------------------

@app_app.command("uninstall")
def uninstall(
    ctx: typer.Context,
    ref: AppRef,
    users: Annotated[str | None, typer.Option(
        "--users", help="What to do with users the app created: deactivate or keep.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Remove an app, its stored data and package; every token it holds stops working."""
    home: Home = ctx.obj
    if users not in (None, "deactivate", "keep"):
        fail(f"--users {users!r} is not deactivate or keep", "pass --users deactivate|keep")
    store = store_only(home)
    with store:
        rec = resolve(store, ref)
        count = lifecycle_seams.count_app_users(home, rec)
        if users is None:
            if count:
                if not is_interactive():
                    fail(f"{rec.app_id} created {count} user(s): choose what happens to them",
                         "pass --users deactivate or --users keep", EXIT_CONFIRM)
                users = "deactivate" if _confirm(
                    f"Deactivate the {count} user(s) {rec.app_id} created?", True) else "keep"
            else:
                users = "keep"
        deactivated: int | None = None
        if users == "deactivate":
            deactivated = lifecycle_seams.deactivate_app_users(home, rec)
            if deactivated is None:
                err_console.print("[yellow]no chat server is wired to this CLI: the app's "
                                  "users were kept; deactivate them on the server[/]")
        data = lifecycle_seams.remove_app_data(home, rec)
        store.remove(rec.install_id, {"users": users})
        for p in {rec.package_path.parent} | (
                {rec.pending.package_path.parent} if rec.pending else set()):
            if p.parent == home.packages_dir:
                shutil.rmtree(p, ignore_errors=True)
    err_console.print(f"uninstalled {rec.app_id}; users: {users}; data: {data}", highlight=False)
    if json_out:
        emit_json({"app_id": rec.app_id, "install_id": rec.install_id, "users": users,
                   "users_deactivated": deactivated, "data": data})


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.add_typer(app_app, name="app")


__all__ = ["EXIT_USAGE", "register"]
