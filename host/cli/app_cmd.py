"""`stockade app`: install (disclosure + consent), list and update, and the steps the other
`app` commands share. `new`, `package` and `sign` are in `app_package_cmd.py`, `uninstall` in
`app_uninstall_cmd.py`, `consent` in `app_consent_cmd.py`, `info` in `app_info_cmd.py`.

Every command takes `--json`: then stdout holds exactly one JSON document and everything for
humans (disclosure tables, prompts, progress) goes to stderr. Exit codes: 0 ok, 1 a negative
answer (declined, an update that waits for consent, tampering found), 2 bad input, 3
confirmation required (no TTY and no --grant, or an unsigned package without --allow-unsigned).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from host.apps import lifecycle_seams
from host.apps.appdiff import diff_manifests, render_diff
from host.apps.consent import (
    ConsentDeclined,
    ConsentError,
    ConsentRequired,
    guardrail_problems,
    is_interactive,
    resolve_grants,
    verify_install,
)
from host.apps.disclosure import Disclosure, build_disclosure, load_policy_view, render_disclosure
from host.apps.installs import InstallChanged, InstallError, InstallRecord, InstallStore
from host.apps.lineage import Lineage, LineageError, binding_of
from host.apps.manifest import Manifest
from host.apps.operations import app_user_blocked, consented_terms, install_package, submit_update
from host.apps.packages import Package
from host.apps.publisher import PublisherError, SignatureCheck, TrustStore, check_signature
from host.cli import (
    app_data_cmd,  # noqa: F401  (registers `app logs`, `settings`, `tokens`)
    app_enable_cmd,  # noqa: F401  (registers `app enable` and `app disable`)
    ask,
)
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
    existing_store,
    operator_name,
    print_quoting,
    print_running,
    resolve,
    rest_identity,
)

# `_read` re-exported (app_consent_cmd takes it from here); importing it registers `app new`,
# `package` and `sign`, before this module's commands as they always stood.
from host.cli.app_package_cmd import _read as _read
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
from host.inert import host, line
from host.keys.keyring import Keyring
from host.ledger.operator import open_keyring
from host.supervise.status import is_fresh, read_status


def _confirm(question: str, default: bool) -> bool:
    # On stderr: prompts are for humans and must never pollute --json stdout. Not
    # typer.confirm: a Ctrl-C could be lost at its prompt (host.cli.ask).
    return ask.confirm(question, default)


def _now() -> float:
    return SystemClock().now()


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
    return InstallStore(home.host_store), open_keyring(home)


def _disclose(home: Home, manifest: Manifest, content_hash: str, sig: SignatureCheck,
              rec: InstallRecord | None = None, title: str = "Install",
              rest_as: str | None = None) -> Disclosure:
    from host.gate.rest_routes import route_actions

    policy, why = load_policy_view(home.policies_dir)
    # A count that cannot be taken is said so, never shown as none (`app_users_counted`).
    users, unknown = (None, "") if rec is None else lifecycle_seams.app_users_counted(home, rec)
    d = build_disclosure(manifest, content_hash, sig, policy, app_users=users,
                         app_users_unknown=unknown, rest_as=rest_as, route_actions=route_actions)
    render_disclosure(d, err_console, title=title)
    if why:  # it quotes the policy loader's findings, which quote the files: in its column
        print_quoting("policy:", why, "yellow")
    return d


def _refuse_guardrails(manifest: Manifest) -> None:
    """Refuse at consent what no consent may grant (admin-class roles), naming it."""
    problems = guardrail_problems(manifest)
    if problems:
        for p in problems:  # each quotes a role name the manifest declares
            print_quoting("refused:", p)
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


# ---- install -----------------------------------------------------------------------------------


@app_app.command("install")
def install(
    ctx: typer.Context,
    pkg_path: Annotated[Path, typer.Argument(help="A packaged app (.zip) or an app folder.")],
    grant: GrantOpt = None,
    allow_unsigned: AllowUnsigned = False,
    transfer: TransferOpt = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the disclosure and checks; install nothing.")] = False,
    rest_as: RestAsOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Show what the app can do, ask for consent, and install it."""
    home: Home = ctx.obj
    pkg = _read(pkg_path)  # nothing touches HOME before the package is fully validated
    sig = _signature(home, pkg)
    if home.has_host_store():
        with InstallStore(home.host_store) as probe:
            if probe.by_app(pkg.app_id) is not None:
                fail(f"app {pkg.app_id!r} is already installed",
                     f"use `stockade app update {pkg.app_id} {pkg_path}`")
    if home.has_server_data():
        # Said before the operator is asked to consent (the install checks it again).
        blocked = app_user_blocked(home, SystemClock(), pkg.app_id)
        if blocked is not None:
            fail(blocked)
    identity = rest_identity(home, None, rest_as)
    disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rest_as=identity)
    _refuse_guardrails(pkg.manifest)
    if dry_run:
        err_console.print("dry run: nothing installed", highlight=False)
        if json_out:
            emit_json({"status": "dry-run", "installed": False,
                       "disclosure": disclosure.to_dict()})
        return
    try:
        _require_signed(sig, allow_unsigned)
        check_lineage(home, pkg.app_id, sig, transfer)
        grants = _grants(pkg.manifest.asked, grant)
    except typer.Exit as stop:
        # A script that runs `install --json` reviews what it stopped on from stdout.
        if json_out:
            emit_json({"status": "consent-required" if stop.exit_code == EXIT_CONFIRM
                       else "refused", "installed": False,
                       "disclosure": disclosure.to_dict()})
        raise
    try:
        rec = install_package(home.ensure(), pkg, sig, grants,
                              policy_revision=disclosure.policy_revision, clock=SystemClock(),
                              transfer=transfer, actor=operator_name(), rest_as=identity)
    except InstallError as exc:
        fail(str(exc))
    except LineageError as exc:
        # Another operator's install of it landed since the look above: said so, as the look
        # does (exit 2), not as "another app posing as the installed one".
        with InstallStore(home.host_store) as probe:
            if probe.by_app(pkg.app_id) is not None:
                fail(f"app {pkg.app_id!r} was installed meanwhile (by another operator): "
                     "nothing changed by this install",
                     f"see `stockade app list`; `stockade app update {pkg.app_id} {pkg_path}` "
                     "updates it")
        fail(str(exc), TRANSFER_HINT, EXIT_NEGATIVE)
    denied = sorted(pkg.manifest.asked - grants)
    err_console.print(line(host("installed", "green"),
                           f" {rec.app_id} {rec.version} as {rec.install_id}; granted: "
                           f"{', '.join(sorted(grants)) or 'nothing'}"
                      + (f"; not granted (PermissionDenied): {', '.join(denied)}" if denied
                         else "")))
    if json_out:
        emit_json({"status": "installed", "installed": True, "install": rec.to_public_dict(),
                   "disclosure": disclosure.to_dict()})


# ---- list (info: app_info_cmd.py; enable, disable: app_enable_cmd.py) --------------------------

def _checked(store: InstallStore, keyring: Keyring, rec: InstallRecord) -> dict[str, Any]:
    check = verify_install(rec, store, keyring)
    current = store.get(rec.install_id) or rec
    d = current.to_public_dict()
    d["missing_settings"] = current.missing_settings()
    d["consent_ok"] = check.ok
    d["consent_problem"] = check.problem
    return d


@app_app.command("list")
def list_apps(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Installed apps (consent re-verified; a tampered install is disabled)."""
    home: Home = ctx.obj
    rows: list[dict[str, Any]] = []
    if home.has_host_store():  # read-only: a mistyped --home is never created
        store, keyring = _open(home)
        with store:
            rows = [_checked(store, keyring, r) for r in store.list()]
    live = read_status(home.host_store)
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
        if r["enabled"] and r["crash_stop"]:  # kept in the record: shown with no host serving
            state = "enabled, stopped for crash-looping"
        pend = f", update {r['pending_update']['version']} pending" if r["pending_update"] else ""
        need = (f"  needs settings: {', '.join(r['missing_settings'])}"
                if r["missing_settings"] else "")
        err_console.print(line(f"{r['app_id']} {r['version']}  {state}{pend}  grants: "
                               f"{', '.join(r['grants']) or '-'}{need}"))
        print_running(r)


# ---- update (consent: app_consent_cmd.py) -----------------------------------------------------

@app_app.command("update")
def update(
    ctx: typer.Context,
    ref: AppRef,
    pkg_path: Annotated[Path, typer.Argument(help="The new package.")],
    allow_unsigned: AllowUnsigned = False,
    json_out: JsonFlag = False,
) -> None:
    """Update an app. Less access applies at once (and replaces an update waiting for
    consent, said and audited); more access waits for `app consent`."""
    home: Home = ctx.obj
    pkg = _read(pkg_path)
    sig = _signature(home, pkg)
    existing_store(home, ref).close()
    store, _keyring = _open(home)
    with store:
        rec = resolve(store, ref)
        if pkg.app_id != rec.app_id:
            fail(f"the package is app {pkg.app_id!r}, not {rec.app_id!r}",
                 "install it as a separate app instead")
        if pkg.content_hash == rec.package_hash:
            err_console.print(line(f"{rec.app_id} is already at this package ({rec.version})"))
            if json_out:
                emit_json({"status": "unchanged", "install": rec.to_public_dict()})
            return
        # The REST identity an update carries is the one the verified consent names (as
        # `submit_update` keeps it): the screen says which, never "the app's own user" by default.
        _held, identity = consented_terms(home, store, rec)
        disclosure = _disclose(home, pkg.manifest, pkg.content_hash, sig, rec, title="Update",
                               rest_as=identity)
        _require_signed(sig, allow_unsigned)
        render_diff(diff_manifests(rec.manifest, pkg.manifest, old_publisher=rec.publisher,
                                   new_publisher=sig.to_dict()), disclosure, err_console)
        _refuse_guardrails(pkg.manifest)
        if Lineage(home.host_store).bound(rec.app_id) not in (None, binding_of(sig.to_dict())):
            err_console.print(line(
                host("this package comes from another publisher than the one the app id "
                     "is bound to", "bold red"),
                f": approving it needs `stockade app consent {rec.app_id} "
                "--transfer-publisher`"))
        try:
            diff = submit_update(home, store, rec, pkg, sig,
                                 policy_revision=disclosure.policy_revision,
                                 actor=operator_name())
        except InstallChanged as exc:  # another operator's change landed after our read
            fail(str(exc), "run it again: it will compare with the install as it is now",
                 EXIT_NEGATIVE)
        if diff.needs_consent:
            rec = store.get(rec.install_id) or rec
            err_console.print(line(
                host(f"update to {pkg.manifest.version} is PENDING", "yellow"),
                f": it widens what the app may do. {rec.app_id} {rec.version} keeps running. "
                f"Review and approve with `stockade app consent {rec.app_id}`"))
            if json_out:
                emit_json({"status": "pending", "diff": diff.to_dict(),
                           "install": rec.to_public_dict(),
                           "disclosure": disclosure.to_dict()})
            raise typer.Exit(EXIT_NEGATIVE)
        dropped = rec.pending.version if rec.pending is not None else None
        rec = store.get(rec.install_id) or rec
    err_console.print(line(host("updated", "green"), f" {rec.app_id} to {rec.version}; grants: "
                           f"{', '.join(sorted(rec.grants)) or 'nothing'}"))
    if dropped is not None:
        err_console.print(line(host("dropped", "yellow"), f" the update to {dropped} that was "
                               "waiting for consent: this one replaces it"))
    if json_out:
        emit_json({"status": "applied", "diff": diff.to_dict(), "install": rec.to_public_dict(),
                   "dropped_pending": dropped})


def register(root: typer.Typer) -> None:
    """Mount this group's commands on the root CLI."""
    root.add_typer(app_app, name="app")


__all__ = ["EXIT_USAGE", "register"]
